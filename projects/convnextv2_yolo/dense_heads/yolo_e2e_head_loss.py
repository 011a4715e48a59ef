"""The training loss of an end-to-end (NMS-free) YOLO head, YOLO26's: a one-to-many and a one-to-one
branch, each assigned on its own predictions, weighted by a per-epoch schedule. The reference's
``E2ELoss`` (ultralytics/utils/loss.py, ultralytics 8.4)."""
from typing import Dict, List, Union

from mmdet.utils import InstanceList, OptInstanceList
from torch import Tensor

from .yolo_head_loss import YOLOHeadLossMixin


class YOLOE2EHeadLossMixin(YOLOHeadLossMixin):
    """``loss_by_feat`` of an end-to-end head with one-to-many (o2m) and one-to-one (o2o) branches.

    Put it first among the head's bases (``class Head(YOLOE2EHeadLossMixin, YOLOHead)``). Each branch
    is the :class:`YOLOHeadLossMixin` loss of its own outputs with its own assigner: ``self.assigner``
    for o2m (the reference: ``topk=10``), ``self.o2o_assigner`` for o2o (``topk=7, topk2=1``: at most
    one positive per GT). With ``w = self.o2m_weight`` (0.8 in the first epoch, set per epoch by
    :class:`~convnextv2_yolo.engine.hooks.E2ELossScheduleHook`), each loss term is
    ``w * L_o2m + max(1 - w, 0) * L_o2o``, as the reference's 3-vector (box, cls, l1); the o2o branch's
    outputs come from detached features (the head's business), so its loss trains its own convs only.

    Besides the head attributes :class:`YOLOHeadLossMixin` uses, needs ``o2o_assigner`` and
    ``o2m_weight`` (float).
    """

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     o2o_cls_scores: List[Tensor],
                     o2o_bbox_preds: List[Tensor],
                     batch_gt_instances: Union[Tensor, InstanceList],
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """Weighted o2m + o2o losses for the whole batch.

        Args:
            cls_scores (list[Tensor]): o2m per-level class logits (B, C, H, W).
            bbox_preds (list[Tensor]): o2m per-level box outputs: side
                distances (B, 4, H, W) in stride units with ``reg_max == 1``,
                DFL logits (B, 4R, H, W) otherwise.
            o2o_cls_scores (list[Tensor]): o2o class logits, as ``cls_scores``.
            o2o_bbox_preds (list[Tensor]): o2o box outputs, as ``bbox_preds``.
            batch_gt_instances (Tensor | list[InstanceData]): Packed (N, 6)
                [batch_idx, label, x1, y1, x2, y2] (pixels) or per-image
                instances.
            batch_img_metas (list[dict]): Image metas (unused).
            batch_gt_instances_ignore: Unused (the reference has no ignore
                regions).

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_l1`` (``loss_dfl`` with
            DFL): the weighted sum of both branches' gain-weighted losses
            times :meth:`loss_scale` (the batch size), so their sum is the
            reference's ``E2ELoss`` total on one GPU. For the log only (no
            ``loss`` in the names, so not summed into the training loss):
            ``o2o_cls``, ``o2o_bbox``, ``o2o_l1`` (the unweighted o2o terms,
            the reference's logged ``cls_loss``, ``box_loss``, ``l1_loss``,
            times the same scale), the same ``o2m_*`` terms, and
            ``o2m_weight``.
        """
        if getattr(self, 'o2o_assigner', None) is None:
            raise RuntimeError(f"{type(self).__name__}: train_cfg['o2o_assigner'] is required to compute losses")
        num_imgs = cls_scores[0].shape[0]
        gts = self._gt_tensors(batch_gt_instances, num_imgs, cls_scores[0].device)
        o2m = self._branch_losses(cls_scores, bbox_preds, gts, self.assigner)
        o2o = self._branch_losses(o2o_cls_scores, o2o_bbox_preds, gts, self.o2o_assigner)
        scale = self.loss_scale(num_imgs)
        w_o2m = float(self.o2m_weight)
        w_o2o = max(1.0 - w_o2m, 0.0)
        losses = {f'loss_{k}': o2m[k] * scale * w_o2m + o2o[k] * scale * w_o2o for k in o2m}
        losses.update({f'o2o_{k}': v.detach() * scale for k, v in o2o.items()})
        losses.update({f'o2m_{k}': v.detach() * scale for k, v in o2m.items()})
        losses['o2m_weight'] = cls_scores[0].new_tensor(w_o2m, dtype=o2m['cls'].dtype)
        return losses
