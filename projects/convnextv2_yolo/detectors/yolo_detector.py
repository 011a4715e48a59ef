"""Single-stage YOLO detector (backbone -> neck -> YOLO11Head)."""
from typing import Union

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

    Args: as :class:`mmdet.models.SingleStageDetector` (``backbone``,
        ``neck``, ``bbox_head``, ``train_cfg``, ``test_cfg``,
        ``data_preprocessor``, ``init_cfg``).
    """

    def loss(self, batch_inputs: Tensor, batch_data_samples: Union[SampleList, dict]) -> dict:
        """Losses of a batch; ``batch_data_samples`` may be the packed dict."""
        return self.bbox_head.loss(self.extract_feat(batch_inputs), batch_data_samples)
