"""Fuzzing the checkpoint converters: the ConvNeXt V2 / FCMAE loader and the Ultralytics converter.

Each gets ``count`` mutations of valid torch-saved seeds (see :mod:`tests.helpers.fuzz`): the state
dict's structure mutated (keys missing, renamed, not strings; tensors of another shape or dtype,
non-tensor values, NaN tensors), the wrapper mutated, and / or the saved file's bytes mutated
(truncated, flipped, emptied). Each must convert or fail with the converter's documented error naming
the file.
"""
import io
import random

import pytest
import torch

from tests.helpers import fuzz


def _save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _checkpoint_case(rng: random.Random, seeds: dict, wrappers) -> tuple:
    """A mutated checkpoint file's bytes: one seed's state dict and / or wrapper mutated, the bytes maybe too."""
    fmt = rng.choice(sorted(seeds))
    sd, what = fuzz.mutate_state_dict(seeds[fmt], rng) if rng.random() < 0.8 else (dict(seeds[fmt]), 'intact')
    wrap_name, wrap = rng.choice(wrappers)
    obj = wrap(sd)
    what = f'{fmt} ({wrap_name}): {what}'
    if rng.random() < 0.15:
        value = fuzz.weird_value(rng)
        obj = value if rng.random() < 0.3 else {**obj, rng.choice(('model', 'state_dict', 'ema')): value} \
            if isinstance(obj, dict) else obj
        what = f'{what}; wrapper entry = {value!r}'
    data = _save(obj)
    if rng.random() < 0.3:
        data, more = fuzz.mutate_bytes(data, rng)
        what = f'{what}; then {more}'
    return data, what


# ----------------------------------------------------------------------------- ConvNeXt V2 / FCMAE
@pytest.fixture(scope='module')
def convnext_seeds():
    from convnextv2_yolo.backbones.convnextv2_checkpoint import convert_to_mmpretrain
    from tests.helpers.convnextv2_reference import fcmae_state, make_reference, official_state, timm_state
    ref = make_reference()
    official = official_state(ref)
    return dict(official=official, fcmae=fcmae_state(ref), timm=timm_state(ref),
                mmpretrain=convert_to_mmpretrain(official, 'official'))


def _case_writer(path, seeds, wrappers):
    """A fuzz ``make_case``: a mutated checkpoint (:func:`_checkpoint_case`) written to ``path``."""
    def make_case(rng, index):
        data, what = _checkpoint_case(rng, seeds, wrappers)
        with open(path, 'wb') as f:
            f.write(data)
        return path, what
    return make_case


def test_fuzz_convnextv2_checkpoints(tmp_path, count, convnext_seeds):
    from convnextv2_yolo.backbones.convnextv2_checkpoint import (CheckpointFormatError, infer_arch,
                                                                 load_mmpretrain_state_dict)
    path = str(tmp_path / 'convnextv2_atto_1k_224_fcmae.pt')
    wrappers = [('plain', lambda sd: sd), ('model', lambda sd: dict(model=sd, epoch=800)),
                ('state_dict', lambda sd: dict(state_dict=sd, meta=dict(epoch=1))),
                ('module.', lambda sd: dict(model_ema={f'module.{k}': v for k, v in sd.items()}))]

    make_case = _case_writer(path, convnext_seeds, wrappers)

    def run_case(path):
        try:
            converted, fmt = load_mmpretrain_state_dict(path)
            infer_arch(converted)
        except Exception as e:  # noqa: B902
            fuzz.check_error(e, (CheckpointFormatError, ), [path])
            return
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in converted.items()):
            raise fuzz.Escape('the converted state dict holds more than str -> tensor')

    failures = fuzz.run_cases('convnextv2_checkpoint', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


# ----------------------------------------------------------------------------- Ultralytics
def _reference_state(version: str) -> dict:
    """A small reference-named state dict that the converter reads as ``version`` (without --check)."""
    g = torch.Generator().manual_seed(0)
    head = 22 if version == 'yolov8' else 23
    sd = {'model.0.conv.weight': torch.rand(4, 3, 3, 3, generator=g), 'model.0.bn.running_var': torch.rand(4),
          'model.0.bn.num_batches_tracked': torch.tensor(3), 'model.2.m.0.cv1.conv.weight': torch.rand(2, 2, 1, 1),
          f'model.{head}.cv2.0.2.weight': torch.rand(64, 4, 1, 1), f'model.{head}.cv2.0.2.bias': torch.rand(64),
          f'model.{head}.cv3.0.2.weight': torch.rand(2, 4, 1, 1), f'model.{head}.cv3.0.2.bias': torch.rand(2)}
    if version != 'yolov8':
        sd['model.10.m.0.attn.qkv.conv.weight'] = torch.rand(8, 4, 1, 1)
    if version == 'yolo26':
        sd['model.23.one2one_cv3.0.2.weight'] = torch.rand(2, 4, 1, 1)
    else:
        sd[f'model.{head}.dfl.conv.weight'] = torch.rand(1, 16, 1, 1)
    return sd


def test_fuzz_ultralytics_checkpoints(tmp_path, count):
    from convnextv2_yolo.converters import ConversionError, convert
    seeds = {v: _reference_state(v) for v in ('yolo11', 'yolov8', 'yolo26')}
    path = str(tmp_path / 'yolo11n.pt')
    wrappers = [('plain', lambda sd: sd), ('ema', lambda sd: dict(model=None, ema=sd, version='8.3.0')),
                ('model', lambda sd: dict(model=sd, names={0: 'a', 1: 'b'})),
                ('state_dict', lambda sd: dict(state_dict=sd, epoch=3))]

    make_case = _case_writer(path, seeds, wrappers)

    def run_case(path):
        try:
            out = convert(path, check=False)
        except Exception as e:  # noqa: B902
            fuzz.check_error(e, (ConversionError, ), [path])
            return
        meta = out['meta']
        if not (isinstance(meta['num_classes'], int) and meta['num_classes'] >= 0):
            raise fuzz.Escape(f'num_classes {meta["num_classes"]!r}')
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in out['state_dict'].items()):
            raise fuzz.Escape('the converted state dict holds more than str -> tensor')

    failures = fuzz.run_cases('ultralytics_checkpoint', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)
