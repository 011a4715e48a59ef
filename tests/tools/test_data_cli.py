"""`--data data.yaml` / `--imgsz N` on any config, and the YOLO-format custom config."""
import os
import os.path as osp

import pytest
from mmengine.config import Config

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets.data_overrides import (nested_transforms, set_image_size, set_mix_augmentation,
                                                     use_data_yaml)
from tests.helpers.data import LICENSE_PLATES, needs_license_plates
from tests.helpers.logs import current_log
from tests.helpers.paths import ROOT

CONFIGS = {
    'yolo11': 'configs/yolo11/yolo11_n_8xb16-500e_coco.py',
    'convnextv2': 'configs/convnextv2_yolo/yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py',
    'demo': 'configs/demo/yolo11_convnextv2-atto_synthetic.py',
}


def _yaml(tmp_path, names=('plate', 'car', 'truck'), splits=('train', 'val')):
    lines = [f'path: {tmp_path}']
    for split in splits:
        (tmp_path / split / 'images').mkdir(parents=True)
        lines.append(f'{split}: {split}/images')
    lines.append(f'names: {list(names)}')
    path = tmp_path / 'data.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _types(pipeline):
    return [t['type'] for t in pipeline]


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_data_yaml_sets_datasets_classes_and_evaluation(tmp_path, name):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[name]))
    use_data_yaml(cfg, _yaml(tmp_path))
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        ds = cfg[key].dataset
        assert ds.type == 'YOLODataset' and ds.split == split and ds.data_yaml == str(tmp_path / 'data.yaml')
        assert ds.metainfo.classes == ('plate', 'car', 'truck')
        assert 'ann_file' not in ds and 'data_prefix' not in ds
        if split != 'train':
            assert ds.test_mode and 'instances' in ds.pipeline[-1]['meta_keys']
    assert cfg.model.bbox_head.num_classes == 3
    assert cfg.val_evaluator.type == 'YOLODetMetric' and cfg.val_evaluator.ann_file is None
    optimizer = cfg.optim_wrapper.optimizer
    if name == 'yolo11':  # the reference's recipe: optimizer=auto on custom data
        assert optimizer == dict(type='auto', weight_decay=5e-4)
    else:  # AdamW recipes are kept
        assert optimizer.type == 'AdamW'


def test_splits_are_needed_where_they_are_used(tmp_path):
    """No train split: training fails naming it (never trains on val); a missing test folder only matters
    for testing (Roboflow exports often lack it)."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.datasets.yolo_format import DataYamlError
    init_default_scope('mmdet')
    yaml = _yaml(tmp_path, splits=('val', ))
    with open(yaml, 'a') as f:
        f.write('test: ../nowhere/images\n')
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['yolo11']))
    use_data_yaml(cfg, yaml)
    assert cfg.train_dataloader.dataset.split == 'train' and cfg.test_dataloader.dataset.split == 'test'
    for key, match in (('train_dataloader', "no 'train' split"), ('test_dataloader', "'test' path not found")):
        with pytest.raises(DataYamlError, match=match):
            DATASETS.build(cfg[key].dataset)


def test_wrapped_datasets_and_evaluator_options_are_kept(tmp_path):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['yolo11']))
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=3, dataset=cfg.train_dataloader.dataset)
    cfg.val_evaluator.classwise = True
    use_data_yaml(cfg, _yaml(tmp_path))
    assert cfg.train_dataloader.dataset.type == 'RepeatDataset' and cfg.train_dataloader.dataset.times == 3
    assert cfg.train_dataloader.dataset.dataset.type == 'YOLODataset'
    assert cfg.val_evaluator.classwise and cfg.val_evaluator.ann_file is None
    assert cfg.num_classes == 3  # the config's own variable follows, for a readable dump


def test_data_yaml_errors_name_the_yaml(tmp_path):
    from convnextv2_yolo.datasets.yolo_format import DataYamlError
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['yolo11']))
    with pytest.raises(DataYamlError, match="no 'val' split"):
        use_data_yaml(cfg, _yaml(tmp_path, splits=('train', )))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('path: .\ntrain: nowhere/images\nval: nowhere/images\nnames: [a]\n')
    with pytest.raises(DataYamlError, match=r"bad.yaml: 'val' path not found: 'nowhere/images'"):
        use_data_yaml(cfg, str(bad))
    with pytest.raises(FileNotFoundError, match='missing.yaml'):
        use_data_yaml(cfg, str(tmp_path / 'missing.yaml'))


@pytest.mark.parametrize('name', sorted(CONFIGS))
@pytest.mark.parametrize('imgsz', [320, 96])
def test_imgsz_reaches_every_pipeline(name, imgsz):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[name]))
    set_image_size(cfg, imgsz)
    pipelines = [cfg[k].dataset.pipeline for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    pipelines += [h.switch_pipeline for h in cfg.custom_hooks if 'switch_pipeline' in h]
    seen = set()
    for pipeline in pipelines:
        for t in nested_transforms(pipeline):  # the mosaic and affine sit inside YOLOMixUp
            if t['type'] == 'YOLOMosaic':
                assert tuple(t['img_scale']) == (imgsz, imgsz)
            elif t['type'] == 'YOLORandomAffine' and any(t.get('border', (0, 0))):
                assert tuple(t['border']) == (-imgsz // 2, -imgsz // 2)
            elif t['type'] == 'LetterResize':
                assert tuple(t['scale']) == (imgsz, imgsz)
            seen.add(t['type'])
    assert 'LetterResize' in seen
    if name != 'demo':
        assert {'YOLOMosaic', 'YOLORandomAffine'} <= seen
    with pytest.raises(ValueError, match='multiple of 32'):
        set_image_size(cfg, 100)


def test_pipelines_build_at_the_new_size():
    """The rewritten pipeline runs: a mosaic sample comes out imgsz x imgsz."""
    import numpy as np
    from mmcv.transforms import Compose
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['yolo11']))
    set_image_size(cfg, 96)
    pipeline = Compose(cfg.train_dataloader.dataset.pipeline[2:-1])  # after loading, before packing
    img = np.random.RandomState(0).randint(0, 255, (120, 200, 3), dtype=np.uint8)
    out = pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                        gt_bboxes=HorizontalBoxes(np.array([[10, 10, 150, 100]], np.float32)),
                        gt_bboxes_labels=np.array([0]), gt_ignore_flags=np.array([False])))
    assert out['img'].shape[:2] == (96, 96) and len(out['gt_bboxes']) >= 1


def _mix_values(cfg):
    values = {}
    for t in nested_transforms(cfg.train_dataloader.dataset.pipeline):
        if t['type'] == 'YOLOMixUp':
            values['mixup'] = t['prob']
        elif t['type'] == 'YOLOCopyPaste':
            values['copy_paste'] = t['ratio']
    return values


def test_data_yaml_trains_without_mixup_and_copy_paste_as_the_reference(tmp_path):
    """--data: the reference's default.yaml (mixup 0, copy_paste 0), logged; --mixup/--copy-paste set them
    afterwards; bad values and configs without the transforms are refused, naming the option."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs/yolo11/yolo11_m_8xb16-500e_coco.py'))
    assert _mix_values(cfg) == dict(mixup=0.15, copy_paste=0.4)
    with current_log() as log:
        use_data_yaml(cfg, _yaml(tmp_path))
    assert _mix_values(cfg) == dict(mixup=0.0, copy_paste=0.0)
    assert 'mixup 0.15 -> 0.0, copy_paste 0.4 -> 0.0' in log()
    assert (cfg.mixup.prob, cfg.copy_paste.ratio) == (0.0, 0.0)  # the config's own variables follow (its dump)
    assert set_mix_augmentation(cfg, mixup=0.1) == ['mixup 0.0 -> 0.1'] and _mix_values(cfg)['mixup'] == 0.1
    assert cfg.mixup.prob == 0.1
    with pytest.raises(ValueError, match='copy_paste must be in'):
        set_mix_augmentation(cfg, copy_paste=1.5)
    demo = Config.fromfile(osp.join(ROOT, CONFIGS['demo']))
    assert set_mix_augmentation(demo, mixup=0.2) == []  # the demo's pipeline has no mixup: nothing to set
    with pytest.raises(ValueError, match='no YOLOMixUp'):
        set_mix_augmentation(demo, mixup=0.2, strict=True)


def test_cli_options_are_shared_by_train_and_test(monkeypatch):
    import argparse

    from convnextv2_yolo.utils.launch import parse_common_args
    monkeypatch.setattr('sys.argv', ['train.py', 'cfg.py', '--data', 'd.yaml', '--imgsz', '320'])
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    args = parse_common_args(parser)
    assert (args.data, args.imgsz) == ('d.yaml', 320)


@needs_license_plates
def test_license_plates_yaml_on_our_config():
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS['yolo11']))
    use_data_yaml(cfg, osp.join(LICENSE_PLATES, 'data.yaml'))
    set_image_size(cfg, 320)
    assert cfg.model.bbox_head.num_classes == 2
    assert cfg.train_dataloader.dataset.metainfo.classes == ('license-plate', 'vehicle')
    assert cfg.test_dataloader.dataset.split == 'test'


# ---------------------------------------------------------------- end to end, as a user runs it
@pytest.fixture(scope='module')
def trained_on_yaml(tmp_path_factory):
    """tools/train.py CONFIG --data data.yaml --imgsz 64: 2 iterations on the tiny synthetic set."""
    from tests.helpers.processes import PY, run_tool
    from tests.helpers.tiny import make_tiny_data, tiny_cfg
    data = make_tiny_data(str(tmp_path_factory.mktemp('shapes')))
    work = str(tmp_path_factory.mktemp('work'))
    cfg = tiny_cfg(data, work, max_epochs=1, batch_size=4)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.log_processor = dict(type='LogProcessor', by_epoch=False, window_size=1)
    cfg_path = str(tmp_path_factory.mktemp('cfg') / 'tiny.py')
    cfg.dump(cfg_path)
    res = run_tool([PY, 'tools/train.py', cfg_path, '--data', data.data_yaml, '--imgsz', '64', '--work-dir', work])
    return data, cfg_path, work, res.stdout + res.stderr


def test_train_py_data_yaml_end_to_end(trained_on_yaml):
    data, _, work, log = trained_on_yaml
    assert "YOLODataset 'train'" in log and "YOLODataset 'val'" in log
    assert 'Iter(val) [1/1]' in log and 'coco/bbox_mAP' in log
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    from convnextv2_yolo.utils.checkpoint_io import safe_torch_load
    meta = safe_torch_load(osp.join(work, 'iter_2.pth'))['meta']
    assert tuple(meta['dataset_meta']['classes']) == tuple(data.metainfo['classes'])


def test_test_py_gives_the_same_metrics_on_the_yolo_and_coco_copies(trained_on_yaml, tmp_path):
    """The synthetic set is written in both layouts: tools/test.py reads the same numbers from each."""
    import re

    from tests.helpers.processes import PY, run_tool
    data, cfg_path, work, _ = trained_on_yaml
    ckpt = osp.join(work, 'iter_2.pth')
    yolo = run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--data', data.data_yaml, '--imgsz', '64',
                     '--work-dir', str(tmp_path / 'y'), '--cfg-options', 'model.test_cfg.score_thr=0.0001'])
    coco = run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--imgsz', '64', '--work-dir', str(tmp_path / 'c'),
                     '--cfg-options', 'model.test_cfg.score_thr=0.0001'])
    pattern = r'bbox_mAP_copypaste: ([-\d. ]+)'
    got_yolo = re.findall(pattern, yolo.stdout + yolo.stderr)
    got_coco = re.findall(pattern, coco.stdout + coco.stderr)
    assert got_yolo and got_yolo == got_coco
    row = r'\n +all +\d+ +\d+ .*\n'  # the reference's table (YOLODetMetric): the same on both copies
    assert re.findall(row, yolo.stdout + yolo.stderr) == re.findall(row, coco.stdout + coco.stderr) != []


def test_demo_trains_on_a_data_yaml(trained_on_yaml, tmp_path):
    from tests.helpers.processes import PY, run_tool
    data = trained_on_yaml[0]
    out = str(tmp_path / 'demo')
    res = run_tool([PY, 'tools/demo.py', '--data', data.data_yaml, '--imgsz', '64', '--epochs', '1',
                    '--work-dir', out, '--num-vis', '2', '--cfg-options', 'train_dataloader.batch_size=4'])
    assert '[demo] COCO bbox metrics' in res.stdout
    assert osp.isfile(osp.join(out, 'detections.png')) and osp.isfile(osp.join(out, 'curves.png'))
    # the results file the README's demo numbers are rendered from
    import json
    result = json.load(open(osp.join(out, 'demo_result.json')))
    assert result['command'].startswith('tools/demo.py --data') and result['epochs'] == 1
    assert [v['epoch'] for v in result['validations']] == [1]
    assert result['final']['coco/bbox_mAP'] == result['validations'][-1]['coco/bbox_mAP']
    assert 0 < result['train_seconds'] < result['wall_seconds']
    assert result['git']['commit'] and result['machine']['torch_threads'] >= 1
    assert result['iterations'] > 0 and result['seed'] is not None


def test_infer_py_takes_the_same_data_yaml(trained_on_yaml, tmp_path):
    from tests.helpers.processes import PY, run_tool
    data, cfg_path, work, _ = trained_on_yaml
    out = str(tmp_path / 'infer')
    res = run_tool([PY, 'tools/infer.py', data.img_dirs['val'], cfg_path, osp.join(work, 'iter_2.pth'),
                    '--data', data.data_yaml, '--imgsz', '64', '--out-dir', out, '--device', 'cpu'])
    assert f"classes (checkpoint): {', '.join(data.metainfo['classes'])}" in res.stdout
    assert len(os.listdir(osp.join(out, 'vis'))) == len(os.listdir(data.img_dirs['val']))
