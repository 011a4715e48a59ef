"""The package imports, registers its modules and ships its configs/tools."""
import os.path as osp

import pytest


def test_import_registers_modules():
    from mmdet.registry import (DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                TASK_UTILS, TRANSFORMS)
    from mmengine.registry import FUNCTIONS

    import convnextv2_yolo  # noqa: F401
    expected = {
        MODELS: [
            'YOLOCSPDarknet', 'YOLO11CSPDarknet', 'ConvNeXtV2', 'YOLOPAFPN', 'YOLO11PAFPN', 'YOLOHead', 'YOLO11Head',
            'YOLODetector', 'YOLODetDataPreprocessor', 'YOLOBCELoss', 'YOLOCIoULoss', 'YOLOModelEMA'
        ],
        TASK_UTILS: ['BatchTaskAlignedAssigner'],
        HOOKS: ['YOLOParamSchedulerHook', 'CloseMosaicHook', 'BackboneFreezeHook', 'YOLOEMAHook',
                'YOLOClassWeightsHook'],
        TRANSFORMS: ['LetterResize', 'YOLOHSVRandomAug', 'YOLORandomAffine', 'YOLOMosaic', 'YOLOMixUp',
                     'YOLOCopyPaste', 'YOLOLoadAnnotations'],
        OPTIM_WRAPPER_CONSTRUCTORS: ['YOLOOptimWrapperConstructor', 'ConvNeXtLayerDecayOptimizerConstructor'],
        OPTIM_WRAPPERS: ['YOLOOptimWrapper', 'YOLOAmpOptimWrapper'],
        METRICS: ['CheckedCocoMetric', 'YOLODetMetric'],
        DATASETS: ['CheckedCocoDataset'],
        FUNCTIONS: ['yolo_collate'],
    }
    for registry, names in expected.items():
        for name in names:
            assert registry.get(name) is not None, f'{name} not registered in {registry.name}'


def test_custom_imports_in_a_config(tmp_path):
    """A user config needs nothing but custom_imports to find our modules."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)\n"
        "model = dict(type='YOLOCSPDarknet', version='yolo11', scale='n')\n")
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope('mmdet')
    backbone = MODELS.build(cfg.model)
    assert type(backbone).__name__ == 'YOLOCSPDarknet'


def test_config_paths():
    from convnextv2_yolo import get_config_path
    path = get_config_path('yolo11/yolo11_n_8xb16-500e_coco.py')
    assert osp.isfile(path)
    with pytest.raises(FileNotFoundError, match='no_such_config'):
        get_config_path('no_such_config.py')
