"""The YOLO training recipe: optimizer groups, LR/momentum schedule, augmentations, close mosaic."""
import argparse
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch.nn as nn

import convnextv2_yolo  # noqa: F401


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)
        self.ln = nn.LayerNorm(4)


def _build_wrapper(total_batch=16, nbs=64, **wrapper):
    """YOLOOptimWrapperConstructor on a small net; the wrapper given the decision for the batch (as the hook does)."""
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

    from convnextv2_yolo.engine.optimizers import TrainingRun, decide_optimizer
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4),
        **wrapper)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='YOLOOptimWrapperConstructor', optim_wrapper_cfg=cfg, paramwise_cfg=dict(nominal_batch_size=nbs)))
    net = _Net()
    wrapper = constructor(net)
    if total_batch is not None:
        wrapper.apply_decision(decide_optimizer(wrapper.policy, wrapper.optimizer, TrainingRun(total_batch)))
    return net, wrapper


def test_optimizer_groups_follow_the_reference():
    net, wrapper = _build_wrapper(total_batch=16)
    assert type(wrapper).__name__ == 'YOLOOptimWrapper'
    bias, decay, norm = wrapper.optimizer.param_groups
    ids = lambda g: {id(p) for p in g['params']}  # noqa: E731
    assert bias['yolo_bias'] and ids(bias) == {id(net.bn.bias), id(net.fc.bias), id(net.ln.bias)}
    assert ids(decay) == {id(net.conv.weight), id(net.fc.weight)}
    assert ids(norm) == {id(net.bn.weight), id(net.ln.weight)}
    assert bias['weight_decay'] == norm['weight_decay'] == 0
    # batch 16 < 64: accumulate round(64/16) = 4 steps, decay 5e-4 * 16 * 4 / 64
    assert wrapper._accumulative_counts == 4
    assert decay['weight_decay'] == pytest.approx(5e-4)


def test_weight_decay_scales_with_large_batch():
    _, wrapper = _build_wrapper(total_batch=128)
    assert wrapper._accumulative_counts == 1
    assert wrapper.optimizer.param_groups[1]['weight_decay'] == pytest.approx(5e-4 * 128 / 64)


def test_grn_parameters_get_no_decay():
    from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    backbone = MODELS.build(dict(type='ConvNeXtV2', arch='atto'))
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='YOLOOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, weight_decay=5e-4))))
    wrapper = constructor(backbone)
    no_decay = {id(p) for g in wrapper.optimizer.param_groups if g['weight_decay'] == 0 for p in g['params']}
    grn = [p for n, p in backbone.named_parameters() if '.grn.' in n]
    assert grn and all(id(p) in no_decay for p in grn)


class _Loader(list):
    """len() = iterations per epoch, like a DataLoader."""

    def __init__(self, iters_per_epoch, batch_size):
        super().__init__([None] * iters_per_epoch)
        self.batch_size = batch_size


def _runner_stub(net, wrapper, it, epoch, max_epochs=10, iters_per_epoch=50, batch_size=64):
    from mmengine.logging import MessageHub
    return SimpleNamespace(optim_wrapper=wrapper, iter=it, epoch=epoch, max_epochs=max_epochs,
                           train_dataloader=_Loader(iters_per_epoch, batch_size), train_loop=None,
                           message_hub=MessageHub.get_instance('test_recipe'))


def test_warmup_and_linear_decay():
    from convnextv2_yolo.engine.hooks import YOLOParamSchedulerHook
    net, wrapper = _build_wrapper(total_batch=64)
    hook = YOLOParamSchedulerHook(lr_factor=0.01, warmup_epochs=3, warmup_min_iters=100,
                                  warmup_bias_lr=0.1, warmup_momentum=0.8)
    hook.before_train(_runner_stub(net, wrapper, 0, 0))
    assert hook.warmup_iters == 150  # max(3 epochs x 50, 100)
    bias, decay, _ = wrapper.optimizer.param_groups
    hook.before_train_iter(_runner_stub(net, wrapper, 0, 0), 0)
    assert bias['lr'] == pytest.approx(0.1) and decay['lr'] == pytest.approx(0.0)
    assert decay['momentum'] == pytest.approx(0.8)
    hook.before_train_iter(_runner_stub(net, wrapper, 75, 1), 25)  # half-way, epoch 1
    lf1 = (1 - 1 / 10) * 0.99 + 0.01
    assert decay['lr'] == pytest.approx(0.5 * 0.01 * lf1)
    assert bias['lr'] == pytest.approx(0.1 + 0.5 * (0.01 * lf1 - 0.1))
    assert decay['momentum'] == pytest.approx(0.8 + 0.5 * (0.937 - 0.8))
    hook.before_train_iter(_runner_stub(net, wrapper, 400, 8), 0)  # after warmup
    lf8 = (1 - 8 / 10) * 0.99 + 0.01
    assert bias['lr'] == pytest.approx(0.01 * lf8) and decay['lr'] == pytest.approx(0.01 * lf8)
    assert decay['momentum'] == pytest.approx(0.937)


def test_hsv_augmentation():
    from convnextv2_yolo.datasets.transforms import YOLOHSVRandomAug
    img = np.random.RandomState(0).randint(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(YOLOHSVRandomAug(0, 0, 0).transform({'img': img.copy()})['img'], img)
    np.random.seed(0)
    out = YOLOHSVRandomAug(0.015, 0.7, 0.4).transform({'img': img.copy()})['img']
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_random_affine_drops_boxes_like_the_reference():
    from mmdet.structures.bbox import HorizontalBoxes

    from convnextv2_yolo.datasets.transforms import YOLORandomAffine
    t = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0,
                         scaling_ratio_range=(1, 1))
    boxes = np.array([[10, 10, 40, 40],     # kept
                      [5, 5, 6.5, 30],      # 1.5 px wide: < 2 px, dropped
                      [90, 10, 130, 40]],   # 25% inside the 100-px image: kept (> 10%)
                     dtype=np.float32)
    res = t.transform(dict(img=np.zeros((100, 100, 3), np.uint8), gt_bboxes=HorizontalBoxes(boxes),
                           gt_bboxes_labels=np.array([0, 1, 2]), gt_ignore_flags=np.zeros(3, bool)))
    assert res['gt_bboxes_labels'].tolist() == [0, 2]
    boxes[2] = [96, 10, 136, 40]  # only 10% left inside: dropped
    res = t.transform(dict(img=np.zeros((100, 100, 3), np.uint8), gt_bboxes=HorizontalBoxes(boxes),
                           gt_bboxes_labels=np.array([0, 1, 2]), gt_ignore_flags=np.zeros(3, bool)))
    assert res['gt_bboxes_labels'].tolist() == [0]


def test_close_mosaic_switch_epoch_follows_max_epochs():
    from convnextv2_yolo.engine.hooks import CloseMosaicHook
    hook = CloseMosaicHook(switch_pipeline=[], close_epochs=10)
    hook.before_train(SimpleNamespace(max_epochs=300))
    assert hook.switch_epoch == 290


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from tests.helpers.tiny import make_tiny_data
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


def _pipeline_types(runner):
    return [type(t).__name__ for t in runner.train_dataloader.dataset.pipeline.transforms]


def test_resume_in_the_close_mosaic_phase_keeps_the_plain_pipeline(tiny_data, tmp_path):
    """3 epochs, mosaic closed for the last 2: stop after epoch 2, resume: epoch 3 has no mosaic."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    from tests.helpers.tiny import tiny_cfg
    seen = {}

    class Record(Hook):
        def before_train_epoch(self, runner):  # runs after CloseMosaicHook (lower priority)
            seen[runner.epoch + 1] = _pipeline_types(runner)

    work_dir = str(tmp_path)
    cfg = tiny_cfg(tiny_data, work_dir, max_epochs=2, close_epochs=1, batch_size=8)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record(), priority='LOWEST')
    runner.train()
    assert 'YOLOMosaic' in seen[1] and 'YOLOMosaic' not in seen[2]

    seen.clear()
    args = argparse.Namespace(launcher='none', work_dir=work_dir, cfg_options=None, amp=False,
                              auto_scale_lr=False, resume=osp.join(work_dir, 'epoch_2.pth'))
    cfg = prepare_train_cfg(tiny_cfg(tiny_data, work_dir, max_epochs=3, close_epochs=2, batch_size=8), args)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record(), priority='LOWEST')
    runner.train()
    assert list(seen) == [3] and 'YOLOMosaic' not in seen[3] and 'LetterResize' in seen[3]


@pytest.mark.parametrize('arch, num_layers', [('atto', 6), ('base', 12)])
def test_layer_decay_depth_is_read_from_the_backbone(arch, num_layers):
    """ConvNeXtLayerDecayOptimizerConstructor without num_layers groups as mmdet's with the backbone's count."""
    import torch.nn as nn
    from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = nn.Module()
    model.backbone = MODELS.build(dict(type='ConvNeXtV2', arch=arch))
    wrapper_cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))

    def groups(constructor, **paramwise):
        build = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type=constructor, optim_wrapper_cfg=wrapper_cfg,
                                                      paramwise_cfg=dict(decay_rate=0.8, **paramwise)))
        return [(g['lr'], g['weight_decay'], [id(p) for p in g['params']]) for g in build(model).optimizer.param_groups]

    auto = groups('ConvNeXtLayerDecayOptimizerConstructor')
    assert auto == groups('LearningRateDecayOptimizerConstructor', num_layers=num_layers)
    assert auto != groups('LearningRateDecayOptimizerConstructor', num_layers=18 - num_layers)
    model.backbone = MODELS.build(dict(type='YOLOCSPDarknet', scale='n'))
    with pytest.raises(ValueError, match='lr_decay_num_layers'):
        groups('ConvNeXtLayerDecayOptimizerConstructor')
