"""Single-stage YOLO detector (backbone -> neck -> YOLOHead)."""
import copy
from typing import List, Optional, Union

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor


@MODELS.register_module()
class YOLODetector(SingleStageDetector):
    """``SingleStageDetector`` whose training batches may arrive packed.

    With :class:`YOLODetDataPreprocessor`, training ``data_samples`` is a
    dict ``(bboxes_labels=(N, 6) tensor, img_metas=[...])`` that goes to the
    head as is; validation/test use the usual list of ``DetDataSample``.
    State-dict prefixes: ``backbone.``, ``neck.``, ``bbox_head.``.

    So that a backbone swap or a scale change is one config line, each part
    reads its input channels from the part before it: the neck's
    ``in_channels`` may be ``'auto'`` (read from the built backbone: its
    ``out_channels`` attribute, else one forward of a 64x64 input), and so
    may the head's (the neck's ``out_channels``, or the backbone's when there
    is no neck); a missing ``in_channels`` means ``'auto'``. The neck's
    ``sppf_c2psa`` may be ``'auto'`` (on, unless the backbone already ends
    with SPPF, as the native ``YOLOCSPDarknet`` does).

    Args: as :class:`mmdet.models.SingleStageDetector` (``backbone``,
        ``neck``, ``bbox_head``, ``train_cfg``, ``test_cfg``,
        ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self, backbone: dict, neck: Optional[dict] = None, bbox_head: Optional[dict] = None,
                 train_cfg: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        # SingleStageDetector.__init__ builds the neck before it could see the
        # backbone: build the parts here instead
        BaseDetector.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.train_cfg, self.test_cfg = train_cfg, test_cfg
        if neck is not None:
            self.neck = MODELS.build(self._resolve_neck(neck))
        bbox_head = copy.deepcopy(bbox_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        if bbox_head.get('in_channels', 'auto') == 'auto':
            bbox_head['in_channels'] = self._neck_channels() if neck is not None else self._backbone_channels()
        self.bbox_head = MODELS.build(bbox_head)

    def _resolve_neck(self, neck: dict) -> dict:
        neck = copy.deepcopy(neck)
        if neck.get('in_channels', 'auto') == 'auto':
            neck['in_channels'] = self._backbone_channels()
        if neck.get('sppf_c2psa') == 'auto':
            neck['sppf_c2psa'] = not any(type(m).__name__ == 'SPPF' for m in self.backbone.modules())
        return neck

    @staticmethod
    def _output_channels(module: torch.nn.Module) -> Optional[List[int]]:
        """A module's ``out_channels`` list of ints, None when it has none."""
        channels = getattr(module, 'out_channels', None)
        if isinstance(channels, (list, tuple)) and all(isinstance(c, int) for c in channels):
            return list(channels)
        return None

    def _neck_channels(self) -> List[int]:
        channels = self._output_channels(self.neck)
        if channels is None:
            raise ValueError(f'bbox_head.in_channels is auto but the neck {type(self.neck).__name__} has no '
                             f'out_channels list: write bbox_head.in_channels')
        return channels

    def _backbone_channels(self) -> List[int]:
        channels = self._output_channels(self.backbone)
        if channels is not None:
            return channels
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            feats = self.backbone(torch.zeros(1, 3, 64, 64))
        self.backbone.train(was_training)
        return [f.shape[1] for f in feats]

    def parse_losses(self, losses: dict) -> tuple:
        """mmengine's ``parse_losses``; the components are kept (detached) in ``loss_components``,
        which the optimizer wrapper logs when it skips a step with a non-finite loss or gradient."""
        loss, log_vars = super().parse_losses(losses)
        self.loss_components = {k: v.detach() for k, v in log_vars.items()}
        return loss, log_vars

    def loss(self, batch_inputs: Tensor, batch_data_samples: Union[SampleList, dict]) -> dict:
        """Losses of a batch; ``batch_data_samples`` may be the packed dict."""
        return self.bbox_head.loss(self.extract_feat(batch_inputs), batch_data_samples)
