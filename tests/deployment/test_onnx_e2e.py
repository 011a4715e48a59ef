"""ONNX export of YOLO26's end-to-end path (top-k in the graph, no NMS), its NMS path, ONNX Runtime
inference, parity with PyTorch, and the refusals (NMS added to an end-to-end model).

Tiny inputs (96-160 px); YOLO26-n with 4 classes and random weights (BatchNorm statistics randomised
so that fusion matters; class biases ~N(0, 1.5) in both branches so that scores spread over (0, 1)
and almost every (anchor, class) pair passes score_thr 0.001; box biases 1-2 strides).
"""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (pip install -e ".[deploy]")')
pytest.importorskip('onnx', reason='onnx is not installed (pip install -e ".[deploy]")')

from tests.helpers.deployment import (CLASSES, assert_same_detections, e2e_config,  # noqa: E402
                                      infer_with_both_backends, pattern_images, random_dfl_checkpoint,
                                      random_e2e_checkpoint)
from tests.helpers.processes import PY, run_tool  # noqa: E402

YOLO26 = 'configs/yolo26/yolo26_n_8xb16-500e_coco.py'
YOLO11 = 'configs/yolo11/yolo11_n_8xb16-500e_coco.py'
SIZE = 128  # 16*16 + 8*8 + 4*4 = 336 anchors: the top-k keeps 300


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """(checkpoint, e2e file, nms file of the one-to-many branch, PyTorch model): one trace each."""
    from convnextv2_yolo.deployment import export_onnx, load_detector
    tmp = tmp_path_factory.mktemp('yolo26')
    ckpt = random_e2e_checkpoint(str(tmp / 'model.pth'))
    e2e, nms = str(tmp / 'e2e.onnx'), str(tmp / 'nms.onnx')
    assert export_onnx(e2e_config(), ckpt, e2e, imgsz=(SIZE, SIZE), postprocess='auto')['postprocess'] == 'e2e'
    assert export_onnx(e2e_config(False), ckpt, nms, imgsz=(SIZE, SIZE), postprocess='auto')['postprocess'] == 'nms'
    model, _ = load_detector(e2e_config(), ckpt)  # unfused: the PyTorch eager model
    return ckpt, e2e, nms, model


def _images(batch: int, seed: int, size=(SIZE, SIZE)) -> torch.Tensor:
    return pattern_images(batch, seed, size)


def _reference_dets(model, images: torch.Tensor, max_det: int = 300) -> torch.Tensor:
    """PyTorch's (B, K, 6) end-to-end detections in float64 (no float32 near-ties in the top-k)."""
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        outs = model64.bbox_head(model64.extract_feat(images.double()))
        return model64.bbox_head.predict_dense(outs[2], outs[3], max_det)


def assert_same_dets(ref: torch.Tensor, got: torch.Tensor, what: str, atol: float = 1e-4) -> dict:
    """Every detection of ``ref`` (K, 6) is in ``got`` (K, 6) once: same class, box and score within
    ``atol``, in the same order up to swaps of scores closer than ``atol``. Returns the max errors."""
    assert ref.shape == got.shape, f'{what}: {tuple(ref.shape)} vs {tuple(got.shape)}'
    ref, got = ref.double(), got.double()
    same_cls = ref[:, None, 5] == got[None, :, 5]
    err = (ref[:, None, :5] - got[None, :, :5]).abs().amax(-1)
    err = torch.where(same_cls, err, torch.full_like(err, float('inf')))
    best, match = err.min(1)
    assert len(set(match.tolist())) == len(ref), f'{what}: detections are not one-to-one'
    box_err = (ref[:, :4] - got[match, :4]).abs().max().item()
    score_err = (ref[:, 4] - got[match, 4]).abs().max().item()
    assert box_err <= atol and score_err <= atol, f'{what}: box error {box_err:.2e}, score error {score_err:.2e}'
    moved = match != torch.arange(len(ref))
    assert ((ref[moved, 4] - got[moved, 4]).abs() <= atol).all(), f'{what}: order differs beyond near-ties'
    assert (got[1:, 4] <= got[:-1, 4]).all(), f'{what}: not by descending score'
    return dict(box=box_err, score=score_err, reordered=int(moved.sum()))


def test_e2e_graph_has_no_nms_and_records_end2end(exported):
    import onnx
    _, e2e, nms, _ = exported
    from convnextv2_yolo.deployment import read_onnx_metadata
    graph = onnx.load(e2e).graph
    ops = {n.op_type for n in graph.node}
    assert 'NonMaxSuppression' not in ops and 'TopK' in ops, sorted(ops)
    assert [o.name for o in graph.output] == ['dets']
    dims = [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 300, 6]
    # only the one-to-one branch is in the graph (as the reference's fused end-to-end model)
    weights = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert 'NonMaxSuppression' in {n.op_type for n in onnx.load(nms).graph.node}
    nms_weights = sum(int(np.prod(t.dims)) for t in onnx.load(nms).graph.initializer)
    assert abs(weights - nms_weights) < 2000, (weights, nms_weights)  # same network size, other branch
    meta = read_onnx_metadata(e2e)
    assert meta['postprocess'] == 'e2e' and meta['end2end'] is True and meta['max_det'] == 300
    assert meta['test_cfg'] == dict(end2end=True, score_thr=0.001, max_per_img=300) and meta['nms'] == {}
    assert 'dets' in meta['outputs'] and meta['classes'] == list(CLASSES)
    meta = read_onnx_metadata(nms)
    assert meta['postprocess'] == 'nms' and meta['end2end'] is False
    assert meta['nms'] == dict(type='nms', iou_threshold=0.7)  # the head's NMS_DEFAULTS
    assert meta['test_cfg']['nms_pre'] == 30000 and meta['test_cfg']['multi_label'] is True


def test_e2e_detections_equal_pytorch(exported):
    """(B, 300, 6) of ONNX Runtime vs PyTorch (float64): every detection within 1e-4 (boxes in px, scores)."""
    from convnextv2_yolo.deployment import ORTDetector
    _, e2e, _, model = exported
    images = _images(2, seed=1)
    ref = _reference_dets(model, images)
    det = ORTDetector(e2e, threads=2)
    got = torch.from_numpy(det.run(images.numpy())['dets'])
    assert got.shape == (2, 300, 6) and got.dtype == torch.float32
    assert ref[:, 0, 4].min() > 0.8 and ref[:, -1, 4].max() < 0.7  # spread scores: a real top-k
    for i in range(2):
        errs = assert_same_dets(ref[i], got[i], f'image {i}')
        print(f'image {i}: 300 detections, max box error {errs["box"]:.2e} px, max score error '
              f'{errs["score"]:.2e}, {errs["reordered"]} reordered')
    # predict_instances = PyTorch's predict_by_feat (score_thr applied after, labels as ints)
    thr = float(ref[0, 150, 4])
    det.test_cfg['score_thr'] = thr
    inst = det.predict_instances(images)
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(images))
        torch_inst = model.bbox_head.predict_by_feat(*outs, cfg=dict(end2end=True, score_thr=thr, max_per_img=300))
    for i in range(2):
        assert len(inst[i]) == len(torch_inst[i]) == int((ref[i, :, 4] > thr).sum())
        assert inst[i].labels.dtype == torch.long
        pack = [torch.cat([r.bboxes, r.scores[:, None], r.labels[:, None].float()], 1)
                for r in (torch_inst[i], inst[i])]
        assert_same_dets(*pack, f'predict_instances image {i}')


def test_nms_path_of_yolo26_equals_pytorch(exported):
    """end2end=False: the one-to-many branch with NMS in the graph = predict_by_feat's NMS path."""
    from convnextv2_yolo.deployment import ORTDetector
    _, _, nms, model = exported
    images = _images(2, seed=2)
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(images))
        refs = model.bbox_head.predict_by_feat(*outs, cfg=dict(end2end=False))  # NMS_DEFAULTS filled in
        candidates = (torch.cat([m.flatten(2) for m in outs[0]], 2).sigmoid() > 0.001).sum().item() / 2
    got = ORTDetector(nms, threads=2).predict_instances(images)
    for i, (ref, res) in enumerate(zip(refs, got)):
        assert candidates > 1000 and 20 < len(ref) < candidates / 2, (candidates, len(ref))
        assert_same_detections(ref, res, f'nms path image {i}')


def test_e2e_through_the_test_pipeline_equals_pytorch(exported, tmp_path):
    """Images of the synthetic set through LetterResize: ORTDetector.test_step (rescaled to the original
    image as YOLOHead._rescale) = the PyTorch model's test_step."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.deployment import ORTDetector
    from convnextv2_yolo.deployment.onnx_runtime import inference_pipeline
    from tests.helpers.tiny import make_tiny_data
    _, e2e, _, model = exported
    init_default_scope('mmdet')
    data = make_tiny_data(str(tmp_path / 'shapes'), num_train=1, num_val=3)
    det = ORTDetector(e2e)
    pipeline = Compose(inference_pipeline(det.meta))
    ann = json.load(open(data.ann_files['val']))
    for img in ann['images']:
        batch = pseudo_collate([pipeline(dict(img_path=osp.join(data.img_dirs['val'], img['file_name']),
                                              img_id=img['id']))])
        with torch.no_grad():
            ref = model.test_step(copy.deepcopy(batch))[0].pred_instances
        got = det.test_step(batch)[0].pred_instances
        assert len(ref) == len(got) == 300 and got.bboxes.max() <= 64  # 64-px images: boxes clipped to them
        pack = [torch.cat([r.bboxes, r.scores[:, None], r.labels[:, None].float()], 1) for r in (ref, got)]
        assert_same_dets(*pack, img['file_name'], atol=1e-3)


def test_dynamic_e2e_file_at_other_sizes(exported, tmp_path):
    """--dynamic: batch, height and width; K = min(300, anchors) follows the input."""
    from convnextv2_yolo.deployment import ORTDetector, export_onnx
    ckpt, _, _, model = exported
    path = str(tmp_path / 'dyn.onnx')
    export_onnx(e2e_config(), ckpt, path, imgsz=(SIZE, SIZE), dynamic=True, postprocess='e2e')
    det = ORTDetector(path)
    for size, k in (((96, 64), 126), ((160, 160), 300)):
        images = _images(2, seed=3, size=size)
        got = torch.from_numpy(det.run(images.numpy())['dets'])
        ref = _reference_dets(model, images)
        assert got.shape == (2, k, 6)
        for i in range(2):
            assert_same_dets(ref[i], got[i], f'{size} image {i}')


def test_nms_on_an_end_to_end_model_is_refused(exported, tmp_path):
    """The reference refuses nms=True for end-to-end models: so do the exporter and the NMS appenders."""
    import onnx

    from convnextv2_yolo.deployment import ExportError, add_nms, append_nms, export_onnx, raw_to_nms, read_onnx_metadata
    ckpt, e2e, _, _ = exported
    out = str(tmp_path / 'x.onnx')
    for postprocess in ('nms', 'none'):
        with pytest.raises(ExportError, match=rf'--postprocess {postprocess}: this is an end-to-end model .* '
                                              r'take no NMS .*model\.test_cfg\.end2end=False'):
            export_onnx(e2e_config(), ckpt, out, imgsz=(64, 64), postprocess=postprocess)
    with pytest.raises(ExportError, match='--postprocess e2e: this config sets test_cfg.end2end=False'):
        export_onnx(e2e_config(False), ckpt, out, imgsz=(64, 64), postprocess='e2e')
    yolo11 = random_dfl_checkpoint('yolo11n', str(tmp_path / 'yolo11.pth'))
    with pytest.raises(ExportError, match='--postprocess e2e needs an end-to-end head .* YOLOHead'):
        export_onnx(e2e_config(path=YOLO11), yolo11, out, imgsz=(64, 64), postprocess='e2e')
    assert not osp.exists(out)
    # an exported end-to-end file fed to an NMS step
    with pytest.raises(ExportError, match='e2e.onnx: an end-to-end .* take no NMS'):
        raw_to_nms(e2e, out)
    with pytest.raises(ExportError, match=r'an end-to-end \(e2e\) file'):
        add_nms(onnx.load(e2e), read_onnx_metadata(e2e))
    with pytest.raises(ExportError, match=r'an end-to-end \(e2e\) file'):
        append_nms(onnx.load(e2e), dict(score_thr=0.001, nms_pre=0, iou_threshold=0.7, max_per_img=300,
                                        multi_label=True))
    assert not osp.exists(out)


@pytest.mark.slow
def test_cli_export_and_infer_e2e_match_pytorch(tmp_path):
    """export_onnx.py (auto = e2e) -> infer.py --backend onnxruntime: the PyTorch path's pictures and JSON
    (boxes rescaled to the original image, scores within 1e-4); and the NMS path's file (4 processes)."""
    from tests.helpers.tiny import make_tiny_data
    data = make_tiny_data(str(tmp_path / 'shapes'), num_train=1, num_val=2)
    cfg = e2e_config(size=96)
    cfg.test_dataloader.dataset.metainfo = dict(classes=CLASSES)
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    ckpt = random_e2e_checkpoint(str(tmp_path / 'model.pth'), seed=6, size=96)
    onnx_path = str(tmp_path / 'model.onnx')
    res = run_tool([PY, 'tools/deployment/export_onnx.py', cfg_path, ckpt, onnx_path])
    assert 'postprocess e2e' in res.stdout and 'dets: (B, 189, 6) float32' in res.stdout, res.stdout
    outs = infer_with_both_backends(data.img_dirs['val'], onnx_path, cfg_path, ckpt, str(tmp_path), num_images=2)
    for f, ref in outs['pytorch'].items():
        got = outs['onnxruntime'][f]
        assert len(ref['labels']) == len(got['labels']) == 189  # every anchor (96 px: 189 < 300), no NMS
        pack = [torch.cat([torch.tensor(o['bboxes']), torch.tensor(o['scores'])[:, None],
                           torch.tensor(o['labels'])[:, None].double()], 1) for o in (ref, got)]
        assert_same_dets(*pack, f, atol=1e-4)
    # YOLO26 with NMS: the one-to-many branch, NMS in the graph
    res = run_tool([PY, 'tools/deployment/export_onnx.py', cfg_path, ckpt, str(tmp_path / 'nms.onnx'),
                    '--cfg-options', 'model.test_cfg.end2end=False'])
    assert 'postprocess nms' in res.stdout and 'num_dets: (B, 1) int32' in res.stdout, res.stdout
    res = run_tool([PY, 'tools/deployment/export_onnx.py', cfg_path, ckpt, str(tmp_path / 'bad.onnx'),
                    '--postprocess', 'nms'], check=False)
    assert res.returncode != 0 and 'this is an end-to-end model' in res.stderr, res.stderr[-2000:]


def test_benchmark_e2e_mode(tmp_path):
    """benchmark_onnx.py --e2e: YOLO26-n e2e / nms / raw and YOLO11-n nms / raw files timed in one run."""
    out = str(tmp_path / 'bench.json')
    res = run_tool([PY, 'tools/analysis_tools/benchmark_onnx.py', '--e2e', '--imgsz', '64', '--runs', '1',
                    '--warmup', '0', '--threads', '1', '--json', out])
    result = json.load(open(out))
    rows = result['rows']
    assert result['provenance']['command'].startswith('tools/analysis_tools/benchmark_onnx.py --e2e')
    assert result['provenance']['machine']['cores'] and result['provenance']['onnxruntime']
    assert [(r['model'], r['postprocess']) for r in rows] == [
        ('yolo26n', 'e2e'), ('yolo26n', 'nms'), ('yolo26n', 'none'), ('yolo11n', 'nms'), ('yolo11n', 'none')]
    assert rows[0]['outputs'] == 'dets [1, 84, 6]' and all(r['median_ms'] > 0 for r in rows)  # 64 px: 84 anchors
    assert 'YOLO26-n end-to-end (no NMS)' in res.stdout and 'vs YOLO11-n with NMS' in res.stdout
