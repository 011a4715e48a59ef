"""Every config in configs/ parses, builds its model and its dataset pipelines."""
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
# Building the largest models only to count them is slow on 2 cores: they are
# parsed always, built under -m slow.
HEAVY = ('_x_', '_l_', '-huge', '-large', '-base')


def _rel(p: str) -> str:
    return osp.relpath(p, osp.join(ROOT, 'configs'))


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize('path', CONFIGS, ids=_rel)
def test_config_parses(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['convnextv2_yolo']
    assert 'model' in cfg and 'train_dataloader' in cfg


def _build(path):
    import convnextv2_yolo  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS, TRANSFORMS
    from mmengine.dataset import Compose
    cfg = Config.fromfile(path)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    # no weights are fetched in tests
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    pipelines = [cfg.train_dataloader.dataset.get('pipeline'), cfg.val_dataloader.dataset.get('pipeline')]
    for hook in cfg.get('custom_hooks', []):
        if 'switch_pipeline' in hook:
            pipelines.append(hook['switch_pipeline'])
    for pipeline in pipelines:
        if pipeline is not None:
            Compose([TRANSFORMS.build(t) for t in pipeline])
    return model


@pytest.mark.parametrize('path', [p for p in CONFIGS if not any(h in p for h in HEAVY)], ids=_rel)
def test_config_builds(path):
    _build(path)


@pytest.mark.slow
@pytest.mark.parametrize('path', [p for p in CONFIGS if any(h in p for h in HEAVY)], ids=_rel)
def test_heavy_config_builds(path):
    _build(path)
