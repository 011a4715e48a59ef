"""ONNX export (raw and NMS-in-graph), ONNX Runtime inference, parity with PyTorch, refusals.

Tiny inputs (64-128 px); models: YOLO11-n, YOLOv8-n, ConvNeXt V2-atto + YOLO11-n with random
weights (BatchNorm statistics randomised so fusion matters; class logits spread so that nearly
every (prior, class) pair passes score_thr 0.001: hundreds of overlapping candidates per image).
"""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (pip install -e ".[deploy]")')
pytest.importorskip('onnx', reason='onnx is not installed (pip install -e ".[deploy]")')

from tests.helpers.deployment import (CLASSES, DFL_CONFIGS, assert_same_detections,  # noqa: E402
                                      infer_with_both_backends, pattern_images, random_dfl_checkpoint, shapes_config)
from tests.helpers.processes import PY, run_tool  # noqa: E402

SIZE = 128


def _config(name: str, size: int = SIZE):
    return shapes_config(DFL_CONFIGS[name], size)


@pytest.fixture(scope='module', params=list(DFL_CONFIGS))
def exported(request, tmp_path_factory):
    """(name, cfg, checkpoint, raw file, nms file, PyTorch model): one trace per model."""
    from convnextv2_yolo.deployment import export_onnx, load_detector, raw_to_nms
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    ckpt = random_dfl_checkpoint(name, str(tmp / 'model.pth'))
    cfg = _config(name)
    export_onnx(cfg, ckpt, str(tmp / 'raw.onnx'), imgsz=(SIZE, SIZE), postprocess='none')
    raw_to_nms(str(tmp / 'raw.onnx'), str(tmp / 'nms.onnx'))
    model, _ = load_detector(cfg, ckpt)  # unfused: the PyTorch eager model
    return name, cfg, ckpt, str(tmp / 'raw.onnx'), str(tmp / 'nms.onnx'), model


def _images(batch: int, seed: int) -> torch.Tensor:
    return pattern_images(batch, seed, (SIZE, SIZE))


def _torch_detections(model, images, cfg=None):
    with torch.no_grad():
        outs = model.bbox_head(model.extract_feat(images))
        return model.bbox_head.predict_by_feat(*outs, cfg=cfg, rescale=False)


def test_raw_outputs_equal_pytorch(exported):
    from convnextv2_yolo.deployment import DenseOutputs, ORTDetector
    name, _, _, raw, _, model = exported
    images = _images(2, seed=1)
    with torch.no_grad():
        ref_boxes, ref_scores = DenseOutputs(model)(images)
    det = ORTDetector(raw, threads=2)
    outs = det.run(images.numpy())
    assert outs['boxes'].shape == (2, 336, 4) and outs['scores'].shape == (2, 336, len(CLASSES))
    for key, ref in (('boxes', ref_boxes), ('scores', ref_scores)):
        rel = np.abs(outs[key] - ref.numpy()).max() / np.abs(ref.numpy()).max()
        assert rel <= 1e-4, f'{name} {key}: max error {rel:.2e} of the largest value'
    assert det.meta['classes'] == list(CLASSES) and det.meta['input_size'] == [SIZE, SIZE]


def test_nms_graph_equals_pytorch_on_overlapping_candidates(exported):
    from convnextv2_yolo.deployment import ORTDetector
    name, _, _, raw, nms, model = exported
    images = _images(2, seed=2)
    refs = _torch_detections(model, images)
    scores = torch.cat([m.flatten(2) for m in model.bbox_head(model.extract_feat(images))[0]], 2).sigmoid()
    candidates = (scores > 0.001).sum().item() / 2
    for path in (nms, raw):  # NMS in the graph; and raw outputs + the head's multiclass_nms
        got = ORTDetector(path, threads=2).predict_instances(images)
        for i, (ref, res) in enumerate(zip(refs, got)):
            # many overlapping candidates, most of them suppressed
            assert candidates > 900 and 20 < len(ref) < candidates / 2, (candidates, len(ref))
            assert_same_detections(ref, res, f'{name} {osp.basename(path)} image {i}')


def test_nms_graph_options_match_pytorch(exported, tmp_path):
    """nms_pre cutting candidates, best class only (multi_label=False), another IoU, K below the survivors."""
    import onnx

    from convnextv2_yolo.deployment import ORTDetector, add_nms, read_onnx_metadata
    from convnextv2_yolo.deployment.onnx_export import save_onnx
    name, _, _, raw, _, model = exported
    if name != 'yolo11n':
        pytest.skip('graph options are model-independent: checked on YOLO11-n')
    images = _images(2, seed=3)
    for multi_label in (True, False):
        test_cfg = dict(score_thr=0.2, nms_pre=150, nms=dict(type='nms', iou_threshold=0.5), max_per_img=25,
                        multi_label=multi_label)
        meta = read_onnx_metadata(raw)
        meta['test_cfg'].update(score_thr=0.2, nms_pre=150, max_per_img=25, multi_label=multi_label)
        meta['nms'] = dict(test_cfg['nms'])
        proto = onnx.load(raw)
        add_nms(proto, meta)
        path = str(tmp_path / f'nms_{multi_label}.onnx')
        save_onnx(proto, meta, path)
        got = ORTDetector(path).predict_instances(images)
        for i, (ref, res) in enumerate(zip(_torch_detections(model, images, test_cfg), got)):
            assert len(ref) > 5
            assert_same_detections(ref, res, f'multi_label={multi_label} image {i}')
        out = ORTDetector(path).run(images.numpy())
        n = out['num_dets'][:, 0]
        assert out['num_dets'].dtype == np.int32 and out['labels'].dtype == np.int32
        assert out['boxes'].shape == (2, 25, 4) and out['scores'].shape == (2, 25)
        for i in range(2):  # documented padding after num_dets
            assert (out['labels'][i, n[i]:] == -1).all() and (out['scores'][i, n[i]:] == 0).all()
            assert (out['boxes'][i, n[i]:] == 0).all()


def test_dynamic_batch_equals_batch_one(tmp_path):
    from convnextv2_yolo.deployment import ORTDetector, export_onnx
    ckpt = random_dfl_checkpoint('yolo11n', str(tmp_path / 'model.pth'), seed=4)
    path = str(tmp_path / 'dyn.onnx')
    export_onnx(_config('yolo11n'), ckpt, path, imgsz=(SIZE, SIZE), postprocess='nms', dynamic='batch')
    det = ORTDetector(path)
    assert det.static_batch is None
    images = _images(3, seed=5)
    together = det.run(images.numpy())
    assert together['num_dets'].shape == (3, 1)
    for i in range(3):
        alone = det.run(images[i:i + 1].numpy())
        n = int(alone['num_dets'][0, 0])
        assert n == int(together['num_dets'][i, 0]) > 0
        np.testing.assert_array_equal(alone['labels'][0], together['labels'][i])
        np.testing.assert_allclose(alone['boxes'][0, :n], together['boxes'][i, :n], atol=1e-3)
        np.testing.assert_allclose(alone['scores'][0, :n], together['scores'][i, :n], atol=1e-5)


def test_coco_map_of_the_export_equals_pytorch(exported, tmp_path):
    """Synthetic validation images through the test pipeline, PyTorch test_step vs ONNX Runtime, COCO mAP.

    A random model scores ~0 against the real boxes, which would prove nothing; the ground truth is
    therefore PyTorch's own 15 highest-scoring detections over the 6 images (pseudo labels): PyTorch
    scores mAP 1.0 on it, and the export must reproduce its boxes (mAP@0.95 IoU) and its score order.
    """
    from mmdet.evaluation import CocoMetric
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.deployment import ORTDetector
    from convnextv2_yolo.deployment.onnx_runtime import inference_pipeline
    from tests.helpers.tiny import make_tiny_data
    name, cfg, _, _, nms, model = exported
    if name != 'yolo11n':
        pytest.skip('mAP parity is checked on YOLO11-n (per-detection parity covers every model)')
    init_default_scope('mmdet')
    data = make_tiny_data(str(tmp_path / 'shapes'), num_train=1, num_val=6)
    det = ORTDetector(nms)
    pipeline = inference_pipeline(det.meta)
    pipeline.insert(2, dict(type='LoadAnnotations', with_bbox=True))
    pipeline = Compose(pipeline)
    ann = json.load(open(data.ann_files['val']))
    preds = {}
    for backend in ('pytorch', 'onnxruntime'):
        preds[backend] = []
        for img in ann['images']:
            sample = pipeline(dict(img_path=osp.join(data.img_dirs['val'], img['file_name']), img_id=img['id']))
            batch = pseudo_collate([sample])
            with torch.no_grad():
                out = (model.test_step(copy.deepcopy(batch)) if backend == 'pytorch' else det.test_step(batch))
            preds[backend] += [o.to_dict() for o in out]
    # pseudo ground truth: PyTorch's 15 best detections (original-image xyxy -> COCO xywh)
    cat_id = {c['name']: c['id'] for c in ann['categories']}
    found = [(float(s), p['img_id'], b.tolist(), int(lab)) for p in preds['pytorch']
             for b, s, lab in zip(p['pred_instances']['bboxes'], p['pred_instances']['scores'],
                                  p['pred_instances']['labels'])]
    best = sorted(found, key=lambda t: -t[0])[:15]
    assert len(best) == 15 and best[-1][0] > 1e-3
    ann['annotations'] = [dict(id=i + 1, image_id=img_id, category_id=cat_id[CLASSES[lab]], iscrowd=0,
                               bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
                          for i, (_, img_id, (x1, y1, x2, y2), lab) in enumerate(best)]
    pseudo = tmp_path / 'pseudo_gt.json'
    pseudo.write_text(json.dumps(ann))
    metrics = {}
    for backend in ('pytorch', 'onnxruntime'):
        metric = CocoMetric(ann_file=str(pseudo), metric='bbox')
        metric.dataset_meta = dict(classes=CLASSES)
        metric.process({}, copy.deepcopy(preds[backend]))
        metrics[backend] = metric.evaluate(len(ann['images']))
    assert metrics['pytorch']['coco/bbox_mAP'] > 0.99, metrics  # its own detections as the ground truth
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'):
        assert abs(metrics['pytorch'][key] - metrics['onnxruntime'][key]) <= 0.001, (key, metrics)
    print('COCO mAP on PyTorch pseudo labels, PyTorch vs ONNX Runtime:', metrics)


@pytest.mark.slow
def test_cli_export_and_infer_match_pytorch(tmp_path):
    """export_onnx.py -> infer.py --backend onnxruntime gives the PyTorch path's pictures and JSON
    (5 tool processes: slow)."""
    from tests.helpers.tiny import make_tiny_data
    data = make_tiny_data(str(tmp_path / 'shapes'), num_train=1, num_val=3)
    cfg = _config('yolo11n', size=96)
    cfg.test_dataloader.dataset.metainfo = dict(classes=CLASSES)
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    ckpt = random_dfl_checkpoint('yolo11n', str(tmp_path / 'model.pth'), seed=6)
    onnx_path = str(tmp_path / 'model.onnx')
    res = run_tool([PY, 'tools/deployment/export_onnx.py', cfg_path, ckpt, onnx_path, '--postprocess', 'nms',
                    '--simplify'])
    assert 'num_dets: (B, 1) int32' in res.stdout and osp.isfile(onnx_path)
    outs = infer_with_both_backends(data.img_dirs['val'], onnx_path, cfg_path, ckpt, str(tmp_path), num_images=3)
    for f, ref in outs['pytorch'].items():
        got = outs['onnxruntime'][f]
        assert len(ref['labels']) > 5 and ref['labels'] == got['labels'], f
        np.testing.assert_allclose(got['bboxes'], ref['bboxes'], atol=1e-3)
        np.testing.assert_allclose(got['scores'], ref['scores'], atol=1e-5)
    # a file without our metadata: refused with the reason, not run with guessed preprocessing
    import onnx
    model = onnx.load(onnx_path)
    del model.metadata_props[:]
    bare = str(tmp_path / 'bare.onnx')
    onnx.save(model, bare)
    res = run_tool([PY, 'tools/infer.py', data.img_dirs['val'], bare, '--backend', 'onnxruntime'], check=False)
    assert res.returncode != 0 and "has no 'convnextv2_yolo' metadata" in res.stderr, res.stderr[-2000:]


def test_file_without_our_metadata_is_refused(exported, tmp_path):
    """infer.py's ONNX Runtime inferencer refuses a file without metadata instead of guessing."""
    import onnx

    from convnextv2_yolo.deployment import make_inferencer
    name, _, _, _, nms, _ = exported
    if name != 'yolo11n':
        pytest.skip('model-independent: checked on YOLO11-n')
    model = onnx.load(nms)
    del model.metadata_props[:]
    bare = str(tmp_path / 'bare.onnx')
    onnx.save(model, bare)
    with pytest.raises(ValueError, match="bare.onnx has no 'convnextv2_yolo' metadata: it was not exported by"):
        make_inferencer(bare)


def test_checkpoint_that_does_not_fit_is_refused_with_the_first_key(tmp_path):
    from convnextv2_yolo.deployment import ExportError, export_onnx
    ckpt = torch.load(random_dfl_checkpoint('yolo11n', str(tmp_path / 'model.pth')), weights_only=True)
    state = ckpt['state_dict']
    state['neck.top_down_layers.0.cv1.conv.weight'] = state['neck.top_down_layers.0.cv1.conv.weight'][:1]
    del state['bbox_head.dfl.conv.weight']
    torch.save(ckpt, str(tmp_path / 'bad.pth'))
    with pytest.raises(ExportError, match=r'first mismatched key neck\.top_down_layers\.0\.cv1\.conv\.weight: shape'):
        export_onnx(_config('yolo11n'), str(tmp_path / 'bad.pth'), str(tmp_path / 'x.onnx'), imgsz=(64, 64))
    assert not osp.exists(tmp_path / 'x.onnx')


def test_unsupported_options_are_refused(tmp_path):
    import onnxruntime as ort

    from convnextv2_yolo.deployment import ExportError, ORTDetector, export_onnx
    from convnextv2_yolo.deployment.onnx_export import check_test_cfg
    for nms, why in ((dict(type='soft_nms'), 'soft_nms'), (dict(type='nms', iou_threshold=0.7,
                                                                class_agnostic=True), 'class_agnostic'),
                     (dict(type='nms', iou_threshold=0.7, offset=1), 'offset=1')):
        with pytest.raises(ExportError, match=why):
            check_test_cfg(dict(nms=nms), 'nms')
    check_test_cfg(dict(nms=dict(type='soft_nms')), 'none')  # raw files leave NMS to the caller
    ckpt = random_dfl_checkpoint('yolo11n', str(tmp_path / 'model.pth'))
    if not {'CUDAExecutionProvider', 'TensorrtExecutionProvider'} & set(ort.get_available_providers()):
        with pytest.raises(ExportError, match='--half: this ONNX Runtime has no GPU provider'):
            export_onnx(_config('yolo11n'), ckpt, str(tmp_path / 'h.onnx'), imgsz=(64, 64), half=True)
    with pytest.raises(ExportError, match='multiples of the largest stride 32'):
        export_onnx(_config('yolo11n'), ckpt, str(tmp_path / 'x.onnx'), imgsz=(100, 100))
    with pytest.raises(ExportError, match='opset 18 or later'):
        export_onnx(_config('yolo11n'), ckpt, str(tmp_path / 'x.onnx'), opset=11)
    (tmp_path / 'junk.onnx').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='not an ONNX model'):
        ORTDetector(str(tmp_path / 'junk.onnx'))
