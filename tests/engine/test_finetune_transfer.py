"""Fine-tuning from a checkpoint with other classes (YOLORunner): the reference's recipe.

A tiny 80-class checkpoint (the demo's model, COCO's class names, random weights) is loaded into
a 5-class config: the class branch keeps the checkpoint's width (80, where the rule for 5 classes
gives 64), every tensor but the final class convs transfers, and the final class convs get the
rows of the classes whose names match (case-insensitive); the other rows keep their init.
"""
import copy
import glob
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS

from tests.helpers.processes import PY, ROOT, run_tool
from tests.helpers.tiny import make_tiny_data, tiny_cfg

FINETUNE_CLASSES = ('Car', 'bus', 'rectangle', 'TRUCK ', 'star')  # 3 COCO names in other cases / spaces


def coco_names():
    from mmdet.evaluation import get_classes
    return tuple(get_classes('coco'))


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')), num_train=4, num_val=2)


def _cfg(tiny_data, work_dir, classes, load_from=None, ema=False):
    """The tiny recipe with ``classes``; without the EMA hook unless ``ema`` (the in-process tests call
    ``load_checkpoint`` without ``before_run``, which creates the EMA model)."""
    cfg = tiny_cfg(tiny_data, work_dir, max_epochs=1, mosaic=False)
    if not ema:
        cfg.custom_hooks = [h for h in cfg.custom_hooks if 'EMA' not in h['type']]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.metainfo = dict(classes=tuple(classes))
    cfg.model.bbox_head.num_classes = len(classes)
    cfg.load_from = load_from
    return cfg


@pytest.fixture(scope='module')
def coco_ckpt(tiny_data, tmp_path_factory):
    """An 80-class checkpoint of the demo model (YOLO11-n head: c3 = 80) with COCO's names."""
    tmp = tmp_path_factory.mktemp('coco_ckpt')
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp / 'work'), coco_names()))
    model = runner.model
    torch.manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1)
    path = str(tmp / 'coco80.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list(coco_names())))), path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def _log_text(runner):
    return ''.join(open(f).read() for f in glob.glob(osp.join(runner.log_dir, '*.log')))


def test_head_width_option():
    """cls_channels=None is the reference's rule (unchanged parameter count); an int sets c3."""
    from convnextv2_yolo.dense_heads import YOLOHead
    rule = YOLOHead(num_classes=5, in_channels=[64, 128, 256])
    wide = YOLOHead(num_classes=5, in_channels=[64, 128, 256], cls_channels=80)
    assert rule.cls_channels == 64 and wide.cls_channels == 80
    assert tuple(wide.cls_convs[0][-1].weight.shape) == (5, 80, 1, 1)
    assert tuple(wide.cls_convs[2][0][1].conv.weight.shape) == (80, 256, 1, 1)
    with pytest.raises(ValueError, match='cls_channels'):
        YOLOHead(num_classes=5, in_channels=[64, 128, 256], cls_channels=0)


def test_class_index_map_rules():
    from convnextv2_yolo.engine.runner import class_index_map
    assert class_index_map(['car', 'bus', 'dog'], ['Bus ', 'cat', 'CAR']) == [1, -1, 0]
    assert class_index_map(['a', 'b'], ['a', 'b']) is None  # same order: a plain copy
    assert class_index_map(['a', 'b'], ['x', 'y']) is None  # nothing matches
    assert class_index_map(None, ['a']) is None and class_index_map(['a'], None) is None
    assert class_index_map(['a', 'b'], ['b', 'a']) == [1, 0]  # same names, other order: remapped


def _assert_finetune_transfer(got: dict, src: dict, init: dict, final: set) -> None:
    """The checkpoint ``src`` loaded into a FINETUNE_CLASSES model (state dict ``got``, ``init`` before loading):
    every tensor but the final class convs ``final`` is the checkpoint's, exactly; their rows of the classes whose
    names match COCO's (Car, bus, TRUCK) are the checkpoint's rows of those names, the other rows keep their init."""
    for key, value in got.items():
        if key not in final:
            torch.testing.assert_close(value, src[key], rtol=0, atol=0, msg=key)
    coco = [n.lower() for n in coco_names()]
    rows = {0: coco.index('car'), 1: coco.index('bus'), 3: coco.index('truck')}
    for key in final:
        for row in range(len(FINETUNE_CLASSES)):
            expected = src[key][rows[row]] if row in rows else init[key][row]  # unmatched rows keep init
            torch.testing.assert_close(got[key][row], expected, rtol=0, atol=0, msg=f'{key} row {row}')


def test_finetune_from_80_class_checkpoint(coco_ckpt, tiny_data, tmp_path):
    """load_from an 80-class checkpoint into a 5-class config through YOLORunner."""
    path, src = coco_ckpt
    cfg = _cfg(tiny_data, str(tmp_path / 'work'), FINETUNE_CLASSES, load_from=path)
    runner = RUNNERS.build(cfg)
    head = runner.model.bbox_head
    assert head.cls_channels == 80  # the checkpoint's width; the rule gives max(64, 5) = 64
    assert runner.cfg.model.bbox_head.cls_channels == 80  # dumped config / checkpoints rebuild it
    torch.manual_seed(1)
    runner.model.init_weights()
    init = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_checkpoint(path)
    got = runner.model.state_dict()

    final = {f'bbox_head.cls_convs.{i}.2.{p}' for i in range(3) for p in ('weight', 'bias')}
    _assert_finetune_transfer(got, src, init, final)
    log = _log_text(runner)
    total = len(got)
    assert f'{total} of {total} tensors transferred' in log
    assert 'class rows copied by name (3 classes, 6 tensors): car->Car, bus->bus, truck->TRUCK ' in log
    assert 'class-branch width (cls_channels) 80 taken from the checkpoint' in log


def test_other_names_transfer_all_but_final_class_convs(coco_ckpt, tiny_data, tmp_path):
    """No name in common: the 6 final class-conv tensors are skipped (shape) and keep their init."""
    path, src = coco_ckpt
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp_path / 'work'), ('rectangle', 'ellipse', 'star'), load_from=path))
    init = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_checkpoint(path)
    got = runner.model.state_dict()
    final = {f'bbox_head.cls_convs.{i}.2.{p}' for i in range(3) for p in ('weight', 'bias')}
    for key, value in got.items():
        assert torch.equal(value, init[key] if key in final else src[key]), key
    log = _log_text(runner)
    assert f'{len(got) - 6} of {len(got)} tensors transferred; 6 skipped (shape, checkpoint -> model): ' \
           'bbox_head.cls_convs.0.2.weight (80, 80, 1, 1) -> (3, 80, 1, 1)' in log
    assert 'class rows copied by name' not in log


def _load_line(runner):
    return next(line for line in _log_text(runner).splitlines() if ' - load_from ' in line)


def test_new_classes_log_info_but_a_partial_body_or_another_family_warns(coco_ckpt, tiny_data, tmp_path):
    """New classes (final class convs at their init) is fine-tuning: INFO. Body tensors left at their
    init, or a converted checkpoint of another family (meta version), is a WARNING that says so."""
    path, src = coco_ckpt
    classes = ('rectangle', 'ellipse', 'star')
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp_path / 'a'), classes, load_from=path))
    runner.load_checkpoint(path)
    assert ' - INFO - ' in _load_line(runner) and 'initial values' not in _load_line(runner)

    partial = str(tmp_path / 'partial.pth')
    first = next(k for k in src if k.startswith('backbone.'))
    torch.save(dict(state_dict={k: v for k, v in src.items() if k != first},
                    meta=dict(version='yolo26', dataset_meta=dict(classes=list(coco_names())))), partial)
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp_path / 'b'), coco_names(), load_from=partial))
    runner.load_checkpoint(partial)
    line = _load_line(runner)
    assert ' - WARNING - ' in line and f'1 not in the checkpoint: {first}' in line
    assert '1 model tensors besides the final class convs keep their initial values' in line
    assert 'the checkpoint is a yolo26 model (meta version) and this model is yolo11' in line


def test_a_checkpoint_that_must_fit_and_does_not_is_an_error(coco_ckpt, tiny_data, tmp_path):
    """tools/test.py sets checkpoint_must_fit: evaluating a partly random model stops with the summary."""
    path, _ = coco_ckpt
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp_path / 'work'), ('rectangle', 'ellipse', 'star'), load_from=path))
    runner.checkpoint_must_fit = True
    with pytest.raises(ValueError, match=r'coco80.pth does not fit the config: .* 6 skipped \(shape'):
        runner.load_checkpoint(path)


def test_same_classes_load_as_mmengine(coco_ckpt, tiny_data, tmp_path):
    """Same 80 classes in the same order: every tensor loads exactly as mmengine's Runner loads it."""
    path, src = coco_ckpt
    runner = RUNNERS.build(_cfg(tiny_data, str(tmp_path / 'work'), coco_names(), load_from=path))
    assert runner.model.bbox_head.cls_channels == 80
    runner.load_checkpoint(path)
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, src[key]), key
    log = _log_text(runner)
    assert f'{len(src)} of {len(src)} tensors transferred' in log and 'copied by name' not in log


def test_resume_builds_the_width_of_the_resumed_checkpoint(coco_ckpt, tiny_data, tmp_path):
    """A fine-tuned run's checkpoint (5 classes, width 80) resumes with the config unchanged."""
    path, _ = coco_ckpt
    work = str(tmp_path / 'work')
    runner = RUNNERS.build(_cfg(tiny_data, work, FINETUNE_CLASSES, load_from=path))
    ckpt = str(tmp_path / 'finetuned.pth')
    torch.save(dict(state_dict=runner.model.state_dict(), meta=dict(epoch=1, iter=1)), ckpt)
    cfg = _cfg(tiny_data, work, FINETUNE_CLASSES, load_from=ckpt)
    cfg.resume = True
    resumed = RUNNERS.build(cfg)
    assert resumed.model.bbox_head.cls_channels == 80


def test_explicit_width_wins_and_other_scale_is_left_alone(coco_ckpt, tiny_data, tmp_path):
    from convnextv2_yolo.engine.runner import fit_head_to_checkpoint
    path, _ = coco_ckpt
    cfg = _cfg(tiny_data, str(tmp_path / 'work'), FINETUNE_CLASSES)
    model = copy.deepcopy(cfg.model)
    model.bbox_head.cls_channels = 96
    assert fit_head_to_checkpoint(model, path) is None and model.bbox_head.cls_channels == 96
    model = copy.deepcopy(cfg.model)
    model.bbox_head.in_channels = [128, 256, 512]  # another scale's head inputs
    assert fit_head_to_checkpoint(model, path) is None and 'cls_channels' not in model.bbox_head
    model = copy.deepcopy(cfg.model)
    model.neck.scale = 's'  # another scale; the head's in_channels stay 'auto' (the neck's)
    assert fit_head_to_checkpoint(model, path) is None and 'cls_channels' not in model.bbox_head
    model = copy.deepcopy(cfg.model)
    assert fit_head_to_checkpoint(model, path) == 80 and model.bbox_head.cls_channels == 80


def _cfg26(tiny_data, work_dir, classes, load_from=None):
    """The tiny recipe with the YOLO26-n model of configs/yolo26 (end-to-end head: two class branches)."""
    cfg = _cfg(tiny_data, work_dir, classes, load_from=load_from)
    cfg.model = Config.fromfile(osp.join(ROOT, 'configs', 'yolo26', 'yolo26_n_8xb16-500e_coco.py')).model
    cfg.model.bbox_head.num_classes = len(classes)
    return cfg


def test_finetune_yolo26_keeps_and_remaps_both_class_branches(tiny_data, tmp_path):
    """An 80-class YOLO26-n checkpoint (COCO names) into 5 classes: both class branches (the reference's
    cv3 and one2one_cv3) keep the checkpoint's width 80 and get the rows of the matching names, as the
    reference's ``_remap_cls_by_names``; every other tensor transfers."""
    src_runner = RUNNERS.build(_cfg26(tiny_data, str(tmp_path / 'src'), coco_names()))
    torch.manual_seed(0)
    with torch.no_grad():
        for t in src_runner.model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1)
    src = {k: v.clone() for k, v in src_runner.model.state_dict().items()}
    path = str(tmp_path / 'yolo26_coco80.pth')
    torch.save(dict(state_dict=src, meta=dict(dataset_meta=dict(classes=list(coco_names())))), path)

    runner = RUNNERS.build(_cfg26(tiny_data, str(tmp_path / 'work'), FINETUNE_CLASSES, load_from=path))
    head = runner.model.bbox_head
    assert type(head).__name__ == 'YOLOE2EHead' and head.cls_channels == 80
    assert tuple(head.one2one_cls_convs[0][-1].weight.shape) == (5, 80, 1, 1)
    torch.manual_seed(1)
    runner.model.init_weights()
    init = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_checkpoint(path)
    got = runner.model.state_dict()
    final = {f'bbox_head.{b}.{i}.2.{p}' for b in ('cls_convs', 'one2one_cls_convs') for i in range(3)
             for p in ('weight', 'bias')}
    _assert_finetune_transfer(got, src, init, final)
    log = _log_text(runner)
    assert f'{len(got)} of {len(got)} tensors transferred' in log
    assert 'class rows copied by name (3 classes, 12 tensors): car->Car, bus->bus, truck->TRUCK ' in log


def _renamed_annotations(tiny_data, tmp_path, names):
    """Copies of the tiny dataset's COCO files with the categories renamed ``names`` (in order)."""
    out = {}
    for split, ann in tiny_data.ann_files.items():
        with open(ann) as f:
            coco = json.load(f)
        for cat, name in zip(sorted(coco['categories'], key=lambda c: c['id']), names):
            cat['name'] = name
        out[split] = str(tmp_path / f'{split}.json')
        with open(out[split], 'w') as f:
            json.dump(coco, f)
    return out


@pytest.mark.parametrize('launcher', ['tools/train.py', 'mim train mmdet'])
def test_load_from_end_to_end(coco_ckpt, tiny_data, tmp_path, launcher):
    """`tools/train.py CONFIG --cfg-options load_from=...` and `mim train mmdet` (mmdet's own train
    script, RUNNERS.build): 1 epoch (1 iteration, EMA on) from the 80-class checkpoint on 4 classes."""
    path, _ = coco_ckpt
    names = ('Car', 'bus', 'triangle', 'star')
    anns = _renamed_annotations(tiny_data, tmp_path, names)
    work = str(tmp_path / 'work')
    cfg = _cfg(tiny_data, work, names, ema=True)
    cfg.train_dataloader.dataset.ann_file = anns['train']
    cfg.val_dataloader.dataset.ann_file = cfg.test_dataloader.dataset.ann_file = anns['val']
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = anns['val']
    cfg_path = str(tmp_path / 'finetune.py')
    cfg.dump(cfg_path)
    if launcher == 'mim train mmdet':
        mim = shutil.which('mim', path=osp.dirname(PY))
        if mim is None:
            pytest.fail('openmim is not installed in the test environment (tools/env/setup.sh installs it)')
        cmd = [mim, 'train', 'mmdet', cfg_path]
    else:
        cmd = [PY, 'tools/train.py', cfg_path]
    res = run_tool(cmd + ['--work-dir', work, '--cfg-options', f'load_from={path}'])
    log = res.stdout + res.stderr
    assert 'class-branch width (cls_channels) 80 taken from the checkpoint' in log
    assert 'class rows copied by name (2 classes, 6 tensors): car->Car, bus->bus' in log
    assert 'size mismatch' not in log and 'missing keys' not in log  # nor in the EMA copy
    saved = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu', weights_only=True)
    assert tuple(saved['state_dict']['bbox_head.cls_convs.0.2.weight'].shape) == (4, 80, 1, 1)
    assert Config.fromfile(osp.join(work, 'finetune.py')).model.bbox_head.cls_channels == 80


# the reference's Python (Ultralytics installed), beside the clone by default; the default tests never need it
REF_PYTHON = os.environ.get('CONVNEXTV2_YOLO_REFERENCE_PYTHON',
                            osp.join(osp.dirname(ROOT), 'refvenv', 'bin', 'python'))


@pytest.mark.slow
@pytest.mark.skipif(not osp.isfile(REF_PYTHON), reason=f'no reference Python at {REF_PYTHON} '
                    '(CONVNEXTV2_YOLO_REFERENCE_PYTHON)')
def test_same_start_and_outputs_as_the_reference(tmp_path):
    """Against the real reference (tests/helpers/reference_finetune.py, about 1 min): its COCO-named 80-class
    YOLO11-n, converted and loaded by YOLORunner into YOLO11-n on its 5-class data.yaml, equals its own
    model after loading, tensor for tensor (all but the unmatched rows' random init); its fine-tuned
    5-class last.pt (class branch 80 wide) converts and gives its outputs."""
    from argparse import Namespace

    from convnextv2_yolo.utils.launch import build_runner, prepare_train_cfg
    out = str(tmp_path / 'ref')
    run_tool([REF_PYTHON, 'tests/helpers/reference_finetune.py', out, json.dumps(coco_names())])
    converter = 'tools/model_converters/ultralytics_to_mmdet.py'
    run_tool([PY, converter, f'{out}/coco80.pt', f'{out}/coco80.pth'])
    res = run_tool([PY, converter, f'{out}/ft/weights/last.pt', f'{out}/last.pth'])
    assert 'yolo11-n, 499 tensors, 5 classes, class-branch width 80' in res.stdout
    run_tool([PY, converter, f'{out}/ref_loaded_state.pt', f'{out}/ref_loaded.pth'])  # to our names

    args = Namespace(data=f'{out}/data/data.yaml', imgsz=64, cfg_options={'load_from': f'{out}/coco80.pth'},
                     launcher='none', work_dir=str(tmp_path / 'work'), amp=False, auto_scale_lr=False, resume=None)
    cfg = prepare_train_cfg(Config.fromfile(osp.join(ROOT, 'configs/yolo11/yolo11_n_8xb16-500e_coco.py')), args)
    cfg.custom_hooks = [h for h in cfg.custom_hooks if 'EMA' not in h['type']]
    cfg.train_dataloader.dataset.cache = str(tmp_path / 'cache')
    runner = build_runner(cfg)
    runner.model.init_weights()
    runner.load_checkpoint(cfg.load_from)
    ours = runner.model.state_dict()
    ref = torch.load(f'{out}/ref_loaded.pth', map_location='cpu', weights_only=True)['state_dict']
    last = torch.load(f'{out}/last.pth', map_location='cpu', weights_only=True)['state_dict']
    assert len(ref) == len(ours) == len(last) == 499
    for key, value in ref.items():
        if key.startswith('bbox_head.cls_convs.') and key.endswith(('.2.weight', '.2.bias')):
            rows = [0, 1, 3] + ([2, 4] if key.endswith('bias') else [])  # Car, bus, TRUCK; the init biases agree
            torch.testing.assert_close(ours[key][rows], value[rows], rtol=0, atol=0, msg=key)
        else:
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    assert 'class rows copied by name (3 classes, 6 tensors): car->Car, bus->bus, truck->TRUCK' in _log_text(runner)

    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(ROOT, 'configs/yolo11/yolo11_n_8xb16-500e_coco.py'))
    cfg.merge_from_dict(torch.load(f'{out}/last.pth', weights_only=True)['meta']['cfg_options'])
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model).eval()
    model.load_state_dict(last, strict=True)
    expected = torch.load(f'{out}/ref_out.pt', weights_only=True)
    with torch.no_grad():
        cls_scores, bbox_dists = model.bbox_head(model.extract_feat(expected['input']))
    for c, b, e in zip(cls_scores, bbox_dists, expected['raw']):
        torch.testing.assert_close(torch.cat((b, c), 1), e, rtol=1e-4, atol=1e-4)
