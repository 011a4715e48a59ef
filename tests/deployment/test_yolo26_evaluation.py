"""Evaluating YOLO26 on both paths: the validation loop and tools/test.py (metrics, dumped predictions,
pictures), end-to-end (one-to-one top-k, no NMS) and NMS (one-to-many + NMS); NMS added to the
end-to-end path by mistake is ignored with a warning.

A tiny random-weight YOLO26-n (4 classes) on the synthetic shapes (64-px images, 96-px letterbox:
12*12 + 6*6 + 3*3 = 189 anchors, so the end-to-end path keeps every anchor's best pair).
"""
import glob
import os.path as osp
import pickle

import pytest
import torch

from tests.helpers.logs import WarningRecords
from tests.helpers.processes import PY, run_tool

SIZE = 96
ANCHORS = 189


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """(tiny data, config file, checkpoint)."""
    from mmengine.config import Config

    from tests.helpers.deployment import CLASSES
    from tests.helpers.deployment import random_e2e_checkpoint as make_checkpoint
    from tests.helpers.paths import ROOT
    from tests.helpers.tiny import make_tiny_data, tiny_cfg
    tmp = tmp_path_factory.mktemp('yolo26_eval')
    data = make_tiny_data(str(tmp / 'shapes'), num_train=2, num_val=4)
    assert tuple(data.metainfo['classes']) == CLASSES
    cfg = tiny_cfg(data, str(tmp / 'work'), size=SIZE)
    yolo26 = Config.fromfile(osp.join(ROOT, 'configs/yolo26/yolo26_n_8xb16-500e_coco.py'))
    cfg.model = yolo26.model
    cfg.model.bbox_head.num_classes = len(CLASSES)
    cfg.model.train_cfg = None
    cfg_path = str(tmp / 'yolo26_tiny.py')
    cfg.dump(cfg_path)
    ckpt = make_checkpoint(str(tmp / 'model.pth'), seed=3, size=SIZE)
    return data, cfg_path, ckpt


def _val(cfg_path: str, ckpt: str, work_dir: str, records: WarningRecords, **test_cfg) -> tuple:
    """runner.val() (the validation loop training runs) with the checkpoint: (metrics, dumped predictions);
    the runner's warnings go to ``records``."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    cfg.model.test_cfg.update(test_cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = 'val' + work_dir.replace('/', '_')
    cfg.load_from = ckpt
    out = osp.join(work_dir, 'preds.pkl')
    cfg.val_evaluator = [cfg.val_evaluator, dict(type='DumpDetResults', out_file_path=out)]
    runner = Runner.from_cfg(cfg)
    runner.logger.addHandler(records)
    try:
        metrics = runner.val()
    finally:
        runner.logger.removeHandler(records)
    with open(out, 'rb') as f:
        return metrics, pickle.load(f)


def test_validation_loop_on_both_paths(setup, tmp_path):
    data, cfg_path, ckpt = setup
    records = WarningRecords()
    warnings_log = records.messages
    e2e_metrics, e2e = _val(cfg_path, ckpt, str(tmp_path / 'e2e'), records)
    nms_metrics, nms = _val(cfg_path, ckpt, str(tmp_path / 'nms'), records, end2end=False)
    assert not [m for m in warnings_log if 'YOLOE2EHead' in m]  # the shipped test_cfg has no nms keys
    for metrics in (e2e_metrics, nms_metrics):
        assert 0 <= metrics['coco/bbox_mAP'] <= 1 and 'coco/bbox_mAP_50' in metrics
    assert len(e2e) == len(nms) == 4
    for a, b in zip(e2e, nms):
        # end-to-end: one (anchor, class) pair per anchor kept (k = anchors < 300), no NMS;
        # NMS path: the one-to-many branch's multi-label candidates, suppressed
        assert len(a['pred_instances']['scores']) == ANCHORS
        assert 0 < len(b['pred_instances']['scores']) <= 300
        assert not torch.equal(a['pred_instances']['bboxes'][:5], b['pred_instances']['bboxes'][:5])
        for p in (a, b):
            h, w = p['ori_shape']  # boxes in original-image pixels
            assert p['pred_instances']['bboxes'][:, 2].max() <= w and p['pred_instances']['bboxes'][:, 3].max() <= h

    # NMS added to the end-to-end path by mistake: ignored (same detections), with a warning once
    warnings_log.clear()
    mistake_metrics, mistake = _val(cfg_path, ckpt, str(tmp_path / 'mistake'), records,
                                    nms=dict(type='nms', iou_threshold=0.5), nms_pre=1000)
    warned = [m for m in warnings_log if 'YOLOE2EHead' in m]
    assert len(warned) == 1, warnings_log
    assert ('test_cfg.end2end=True' in warned[0] and 'take no NMS' in warned[0] and 'ignored' in warned[0]
            and 'test_cfg.end2end=False' in warned[0] and "nms={'type': 'nms', 'iou_threshold': 0.5}" in warned[0])
    assert mistake_metrics == e2e_metrics
    for a, b in zip(e2e, mistake):
        for key in ('bboxes', 'scores', 'labels'):
            assert torch.equal(a['pred_instances'][key], b['pred_instances'][key])


def test_resolved_test_cfg():
    from convnextv2_yolo.dense_heads import YOLOE2EHead
    head = YOLOE2EHead(num_classes=3, in_channels=[16, 32, 64], test_cfg=dict(end2end=True, score_thr=0.01))
    assert head.resolve_test_cfg() == dict(end2end=True, score_thr=0.01, max_per_img=300)
    cfg = head.resolve_test_cfg(dict(end2end=False, nms=dict(iou_threshold=0.6)))  # as --cfg-options adds it
    assert cfg == dict(end2end=False, score_thr=0.001, max_per_img=300, nms_pre=30000, multi_label=True,
                       nms=dict(type='nms', iou_threshold=0.6))
    assert head.resolve_test_cfg(dict(end2end=False, multi_label=False))['multi_label'] is False
    assert YOLOE2EHead(num_classes=3, in_channels=[16, 32, 64]).resolve_test_cfg()['end2end'] is True


def test_tools_test_py_on_both_paths(setup, tmp_path):
    """tools/test.py: metrics, --out predictions and --show-dir pictures, end-to-end and with NMS."""
    data, cfg_path, ckpt = setup
    preds = {}
    for name, extra in (('e2e', []), ('nms', ['--cfg-options', 'model.test_cfg.end2end=False'])):
        work = str(tmp_path / name)
        out = osp.join(work, 'preds.pkl')
        res = run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--work-dir', work, '--out', out, '--show-dir', 'vis',
                        *extra])
        log = res.stdout + res.stderr
        assert 'coco/bbox_mAP' in log and 'take no NMS' not in log, log[-3000:]  # no NMS-misuse warning
        # the NMS path says once which settings it applies
        assert log.count('YOLOE2EHead: test_cfg.end2end=False: the one-to-many branch with NMS') == (name == 'nms')
        assert len(glob.glob(osp.join(work, '*', 'vis', '*.jpg'))) == 4  # result pictures
        with open(out, 'rb') as f:
            preds[name] = pickle.load(f)
    assert all(len(p['pred_instances']['scores']) == ANCHORS for p in preds['e2e'])
    assert all(0 < len(p['pred_instances']['scores']) <= 300 for p in preds['nms'])


@pytest.mark.slow
def test_infer_pictures_on_both_paths(setup, tmp_path):
    """tools/infer.py (PyTorch) draws both paths; the NMS path by --cfg-options (2 processes)."""
    import json
    data, cfg_path, ckpt = setup
    counts = {}
    for name, extra in (('e2e', []), ('nms', ['--cfg-options', 'model.test_cfg.end2end=False'])):
        out_dir = str(tmp_path / name)
        run_tool([PY, 'tools/infer.py', data.img_dirs['val'], cfg_path, ckpt, '--out-dir', out_dir, '--device', 'cpu',
                  *extra])
        assert len(glob.glob(osp.join(out_dir, 'vis', '*.jpg'))) == 4
        counts[name] = [len(json.load(open(f))['scores']) for f in sorted(glob.glob(osp.join(out_dir, 'preds', '*')))]
    assert counts['e2e'] == [ANCHORS] * 4 and all(0 < n <= 300 for n in counts['nms']), counts
