"""MuSGD: the reference's (Ultralytics 8.4) Muon + SGD hybrid optimizer, reimplemented.

Follows the behaviour of ``ultralytics/optim/muon.py`` (``MuSGD``,
``muon_update``, ``zeropower_via_newtonschulz5``) and of the parameter
grouping in ``ultralytics/engine/trainer.py`` (``BaseTrainer.build_optimizer``)
of ultralytics 8.4.190; Muon itself is K. Jordan's "Muon: An optimizer for
hidden layers in neural networks" (2024).
"""
import math
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set

import torch
from mmengine.registry import OPTIMIZERS
from torch import Tensor

# quintic Newton-Schulz coefficients (a, b, c) of the Muon reference implementation
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
MUON_NDIMS = (2, 4)  # parameters that get the orthogonalised update: matrices and conv filters


def newton_schulz_orthogonalize(g: Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> Tensor:
    """Approximate the orthogonal factor ``U V^T`` of ``g = U S V^T`` (Muon's "zeroth power").

    In bfloat16: ``X = g / (||g||_F + eps)`` per matrix, transposed when it has
    more rows than columns (so ``X X^T`` is the smaller Gram matrix), then
    ``steps`` quintic iterations ``A = X X^T; X = a X + (b A + c A A) X`` with
    ``(a, b, c) = (3.4445, -4.7750, 2.0315)``. The result has the singular
    vectors of ``g`` and singular values roughly in [0.5, 1.5] (not exactly 1:
    the coefficients trade accuracy for speed). Singular values far below
    ``||g||_F`` (e.g. a square random matrix's smallest) stay small.

    Args:
        g (Tensor): A matrix ``(rows, cols)`` or a batch ``(n, rows, cols)``.
        steps (int): Newton-Schulz iterations. Defaults to 5.
        eps (float): Added to the Frobenius norm. Defaults to 1e-7.

    Returns:
        Tensor: Same shape as ``g``, dtype bfloat16.

    Raises:
        ValueError: ``g`` is not 2-D or 3-D.
    """
    if g.ndim not in (2, 3):
        raise ValueError(f'newton_schulz_orthogonalize: expected a (rows, cols) matrix or a batch of them, '
                         f'got shape {tuple(g.shape)}')
    x = g.to(torch.bfloat16)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + eps)
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b A + c A A
        x = torch.baddbmm(x, poly, x, beta=a)  # a X + poly X
    if tall:
        x = x.mT
    return x.reshape(g.shape)


def muon_updates(grads: Sequence[Tensor], buffers: Sequence[Tensor], beta: float,
                 nesterov: bool = True) -> List[Tensor]:
    """Muon's orthogonalised momentum updates for a list of 2-D/4-D gradients.

    The buffers are updated in place, ``buf = beta * buf + (1 - beta) * grad``;
    the direction is ``beta * buf + (1 - beta) * grad`` (Nesterov) or ``buf``.
    Each direction is flattened to ``(shape[0], prod(shape[1:]))`` (a conv
    filter ``(out, in, kh, kw)`` becomes ``(out, in * kh * kw)``), orthogonalised
    by :func:`newton_schulz_orthogonalize` (directions of equal flattened shape
    in one batched call) and multiplied by ``sqrt(max(1, shape[-2] /
    shape[-1]))`` of the *gradient's* shape, as the reference does: ``out / in``
    for a matrix but ``kh / kw`` (1 for square kernels) for a conv filter.

    Args:
        grads (Sequence[Tensor]): Gradients, each with 2 or more dimensions.
        buffers (Sequence[Tensor]): Momentum buffers, same shapes, modified in place.
        beta (float): Momentum coefficient.
        nesterov (bool): Nesterov direction. Defaults to True.

    Returns:
        list[Tensor]: One update per gradient, with its shape and dtype.

    Raises:
        ValueError: a gradient has fewer than 2 dimensions, or the lists differ in length.
    """
    if len(grads) != len(buffers):
        raise ValueError(f'muon_updates: {len(grads)} gradients but {len(buffers)} momentum buffers')
    bad = [tuple(g.shape) for g in grads if g.ndim < 2]
    if bad:
        raise ValueError(f'muon_updates: gradients need >= 2 dimensions, got shapes {bad}')
    if not grads:
        return []
    torch._foreach_lerp_(list(buffers), list(grads), 1 - beta)
    directions = torch._foreach_lerp(list(grads), list(buffers), beta) if nesterov else list(buffers)
    batches: Dict[tuple, List[int]] = defaultdict(list)
    for i, d in enumerate(directions):
        batches[(d.size(0), d[0].numel(), d.device, d.dtype)].append(i)
    updates: List[Optional[Tensor]] = [None] * len(grads)
    for (rows, cols, _, _), index in batches.items():
        stack = torch.stack([directions[i].reshape(rows, cols) for i in index])
        ortho = newton_schulz_orthogonalize(stack)
        for j, i in enumerate(index):
            g = grads[i]
            scale = math.sqrt(max(1.0, g.size(-2) / g.size(-1)))
            updates[i] = ortho[j].to(g.dtype).mul_(scale).reshape(g.shape)
    return updates


@OPTIMIZERS.register_module()
class MuSGD(torch.optim.Optimizer):
    """The reference's MuSGD: Muon + SGD for groups with ``use_muon``, plain SGD elsewhere.

    Per step, for a group with learning rate ``lr``, momentum ``m`` and weight
    decay ``wd`` (parameters without a gradient are skipped):

    - ``use_muon=True`` (2-D/4-D parameters): first ``p -= lr * muon *
      muon_update`` (:func:`muon_updates` with ``beta = m``, its own buffer
      ``muon_momentum_buffer``), then an SGD step at ``lr * sgd`` as below with
      its own buffer ``momentum_buffer``; the SGD step's weight decay uses the
      parameter *after* the Muon step (the reference's order);
    - otherwise SGD: ``d = grad + wd * p; buf = m * buf + d`` (buffer starting
      at 0, no dampening); ``p -= lr * (d + m * buf)`` with Nesterov, else
      ``p -= lr * buf`` (the same as ``torch.optim.SGD``).

    ``muon`` and ``sgd`` are stored in every group, so they travel with the
    state dict. The defaults are those of the reference trainer's
    ``optimizer=auto`` (lr 0.01, momentum 0.9, Nesterov, muon 0.2, sgd 1.0);
    the reference class's own defaults differ (lr 1e-3, momentum 0,
    muon 0.5, sgd 0.5). :func:`musgd_param_groups` builds the reference's
    groups; with ``YOLOOptimWrapperConstructor`` a config's
    ``optimizer=dict(type='MuSGD')`` is regrouped by ``YOLOParamSchedulerHook``
    before the run (``decide_optimizer``, applied by ``YOLOGradAccumulation.apply_decision``).

    Args:
        params (Iterable): Parameters or param-group dicts (keys: ``lr``,
            ``momentum``, ``weight_decay``, ``nesterov``, ``use_muon``, ``muon``, ``sgd``).
        lr (float): Learning rate. Defaults to 0.01.
        momentum (float): SGD momentum and Muon's ``beta``. Defaults to 0.9.
        weight_decay (float): L2 penalty of the SGD part. Defaults to 0.
        nesterov (bool): Nesterov momentum for both parts. Defaults to True.
        use_muon (bool): Default of the groups' ``use_muon``. Defaults to False.
        muon (float): LR factor of the Muon update. Defaults to 0.2.
        sgd (float): LR factor of the SGD update in Muon groups. Defaults to 1.0.

    Raises:
        ValueError: a negative lr/momentum/weight decay, or a ``use_muon``
            group holding a parameter with fewer than 2 dimensions (at the step).
        RuntimeError: a sparse gradient.
    """

    def __init__(self, params: Iterable, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
                 nesterov: bool = True, use_muon: bool = False, muon: float = 0.2, sgd: float = 1.0) -> None:
        for key, value in (('lr', lr), ('momentum', momentum), ('weight_decay', weight_decay)):
            if value < 0:
                raise ValueError(f'MuSGD: {key} must be >= 0, got {value}')
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                        use_muon=use_muon, muon=muon, sgd=sgd)
        super().__init__(params, defaults)

    def _buffers(self, params: List[Tensor], key: str) -> List[Tensor]:
        out = []
        for p in params:
            state = self.state[p]
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            out.append(state[key])
        return out

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Tensor]] = None) -> Optional[Tensor]:
        """One update of every group (see the class docstring).

        Args:
            closure (callable, optional): Re-evaluates the model and returns the loss.

        Returns:
            Tensor or None: The closure's loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError('MuSGD does not support sparse gradients')
            grads = [p.grad for p in params]
            lr, momentum = group['lr'], group['momentum']
            if group['use_muon']:
                flat = [tuple(p.shape) for p in params if p.ndim < 2]
                if flat:
                    raise ValueError(f'MuSGD: a use_muon group holds parameters with < 2 dimensions {flat}')
                updates = muon_updates(grads, self._buffers(params, 'muon_momentum_buffer'), momentum,
                                       group['nesterov'])
                torch._foreach_add_(params, updates, alpha=-lr * group['muon'])
                lr = lr * group['sgd']
            if group['weight_decay']:
                grads = torch._foreach_add(grads, params, alpha=group['weight_decay'])
            buffers = self._buffers(params, 'momentum_buffer')
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            directions = torch._foreach_add(grads, buffers, alpha=momentum) if group['nesterov'] else buffers
            torch._foreach_add_(params, directions, alpha=-lr)
        return loss


def musgd_param_groups(param_groups: Sequence[dict], boosted: Set[int], lr: float,
                       boost: float = 3.0, decay: Optional[float] = None) -> List[dict]:
    """Regroup parameters as the reference trainer does for MuSGD.

    Every parameter with 2 or 4 dimensions leaves its group for one Muon group
    (``use_muon=True``, weight decay ``decay``, tagged
    ``yolo_base_weight_decay=decay`` so the batch-size scaling of
    ``YOLOGradAccumulation.apply_decision`` applies); the other groups
    keep their keys (``weight_decay``, ``yolo_*`` tags). Each group is then
    split into its ordinary parameters (``lr``) and the ``boosted`` ones (the
    head's class branch, ``cv3`` in the reference: ``lr * boost``, tagged
    ``yolo_lr_scale``). Empty groups are dropped. The order is the input's
    groups, then the Muon group, each ordinary part before its boosted part.

    Args:
        param_groups (Sequence[dict]): Groups with ``params`` (a list of
            tensors) and any other keys; ``yolo_initial_lr`` and
            ``yolo_initial_momentum`` are dropped (the scheduler re-derives them).
        boosted (set[int]): ``id()`` of the parameters whose LR is multiplied.
        lr (float): The optimizer's LR.
        boost (float): LR factor of the boosted parameters. Defaults to 3 (the reference).
        decay (float, optional): Weight decay of the Muon group; ``None`` takes
            the ``yolo_base_weight_decay`` of the input groups (0 without one).

    Returns:
        list[dict]: Param groups for :class:`MuSGD`.
    """
    if decay is None:
        decay = next((g['yolo_base_weight_decay'] for g in param_groups if 'yolo_base_weight_decay' in g), 0.0)
    derived = ('params', 'yolo_initial_lr', 'yolo_initial_momentum')
    plain = [{k: v for k, v in g.items() if k not in derived} for g in param_groups]
    members: List[List[Tensor]] = [[p for p in g['params'] if p.ndim not in MUON_NDIMS] for g in param_groups]
    plain.append(dict(weight_decay=decay, yolo_base_weight_decay=decay, use_muon=True))
    members.append([p for g in param_groups for p in g['params'] if p.ndim in MUON_NDIMS])
    groups = []
    for keys, params in zip(plain, members):
        ordinary = [p for p in params if id(p) not in boosted]
        extra = [p for p in params if id(p) in boosted]
        if ordinary:
            groups.append(dict(keys, params=ordinary, lr=lr))
        if extra:
            groups.append(dict(keys, params=extra, lr=lr * boost, yolo_lr_scale=boost))
    return groups
