"""Each upstream fix in ``convnextv2_yolo.patches``: the defect without it, the behaviour with it.

Replaced functions keep the upstream one as ``__wrapped__``, which shows the
defect in this process; fixes that are not a function replacement run in a
fresh process with ``$CONVNEXTV2_YOLO_SKIP_PATCHES`` naming them.
"""
import collections
import os
import os.path as osp
import pickle
import socket
import types

import numpy as np
import pytest
import torch

import convnextv2_yolo  # noqa: F401  (applies the patches)
from convnextv2_yolo import patches
from tests.helpers.processes import PY, run_tool


def _patched_attributes():
    """Every attribute the patches replace, as (owner, name) -> current object."""
    import mmengine.dist.utils as dist_utils
    from mmdet.datasets.api_wrappers import COCO
    from mmengine.fileio.backends.local_backend import LocalBackend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import HistoryBuffer
    from mmengine.model.wrappers import MMDistributedDataParallel
    from mmengine.runner.checkpoint import CheckpointLoader
    owners = [(dist_utils, '_init_dist_pytorch'), (MMDistributedDataParallel, '__init__'),
              (HistoryBuffer, '__getstate__'), (HistoryBuffer, '__setstate__'), (LocalBackend, 'put'),
              (LocalBackend, 'put_text'), (CheckpointHook, '_save_checkpoint_with_step'),
              (CheckpointHook, '_save_best_checkpoint'), (COCO, 'get_cat_ids'), (COCO, 'loadRes')]
    found = {(getattr(o, '__name__', o), n): getattr(o, n) for o, n in owners}
    found['loader'] = CheckpointLoader._schemes['']
    found['safe_globals'] = len(torch.serialization.get_safe_globals())
    return found


def test_every_patch_is_documented_and_idempotent():
    for patch in patches.PATCHES:
        doc = patch.__doc__ or ''
        assert 'Upstream defect' in doc and 'Applies to' in doc, patch.__name__
    before = _patched_attributes()
    patches.apply_all()
    for patch in patches.PATCHES:  # each one again, directly
        patch()
    assert _patched_attributes() == before


def test_readme_names_every_patch():
    """Users pick names for CONVNEXTV2_YOLO_SKIP_PATCHES from the README's "Compatibility fixes"."""
    from tests.helpers.paths import ROOT
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    section = readme[readme.index('## Compatibility fixes'):]
    missing = [p.__name__ for p in patches.PATCHES if f'`{p.__name__}`' not in section]
    assert not missing, f'README "Compatibility fixes" does not name {missing}'


def test_unknown_patch_name_is_refused(monkeypatch):
    monkeypatch.setenv(patches.SKIP_ENV, 'no_such_fix')
    with pytest.raises(ValueError, match='unknown fixes'):
        patches.apply_all()


def _history_buffer_checkpoint(path):
    from mmengine.logging import HistoryBuffer
    torch.save({'meta': {'seed': np.int64(3), 'arr': np.arange(3)},
                'message_hub': {'log_scalars': {'loss': HistoryBuffer([0.5, 1.5], [1, 1])}}}, str(path))


def test_allow_mmengine_checkpoint_globals(tmp_path):
    path = tmp_path / 'ckpt.pth'
    _history_buffer_checkpoint(path)
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
            torch.load(str(path), weights_only=True)  # torch >= 2.6's default
        patches.allow_mmengine_checkpoint_globals()
        state = torch.load(str(path), weights_only=True)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)
    assert state['meta']['seed'] == 3 and state['message_hub']['log_scalars']['loss'].mean() == 1.0


def test_plain_message_hub_state(tmp_path, monkeypatch):
    from mmengine.logging import HistoryBuffer
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint
    fixed = tmp_path / 'fixed.pth'
    _history_buffer_checkpoint(fixed)
    assert 'builtins.getattr' not in unsafe(str(fixed))
    buf = torch.load(str(fixed), weights_only=True)['message_hub']['log_scalars']['loss']
    assert buf.statistics('max') == 1.5
    monkeypatch.setattr(HistoryBuffer, '__getstate__', HistoryBuffer.__getstate__.__wrapped__)
    upstream = tmp_path / 'upstream.pth'
    _history_buffer_checkpoint(upstream)
    assert 'builtins.getattr' in unsafe(str(upstream))  # cannot be allow-listed safely
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(upstream), weights_only=True)


def test_register_safe_local_loader(tmp_path, monkeypatch):
    from mmengine.runner import checkpoint as mmengine_checkpoint

    from convnextv2_yolo.utils.checkpoint_io import TRUST_ENV, CheckpointLoadError
    old = tmp_path / 'old.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': {'m': [1, 2].copy}}, str(old))
    monkeypatch.setenv(TRUST_ENV, str(old))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(old.read_bytes()[:100])
    # upstream: no way to load a trusted file, and a truncated one fails without its name
    with pytest.raises(pickle.UnpicklingError):
        mmengine_checkpoint.load_from_local(str(old), 'cpu')
    with pytest.raises(Exception) as e:
        mmengine_checkpoint.load_from_local(str(cut), 'cpu')
    assert 'cut.pth' not in str(e.value)
    # patched
    assert mmengine_checkpoint.CheckpointLoader._schemes[''] is patches.mmengine_checkpoint.load_from_local
    assert torch.equal(mmengine_checkpoint._load_checkpoint(str(old), 'cpu')['state_dict']['w'], torch.ones(2))
    with pytest.raises(CheckpointLoadError, match='cut.pth is not a valid checkpoint'):
        mmengine_checkpoint._load_checkpoint(str(cut), 'cpu')


def test_skip_mmpretrain_multimodal_on_new_transformers(monkeypatch):
    import importlib.metadata as md

    import mmpretrain.utils.dependency as dependency
    monkeypatch.setattr(dependency, 'WITH_MULTIMODAL', True)
    monkeypatch.setattr(md, 'version', lambda name: '4.46.0')
    patches.skip_mmpretrain_multimodal_on_new_transformers()
    assert dependency.WITH_MULTIMODAL  # older transformers: untouched
    monkeypatch.setattr(md, 'version', lambda name: '5.0.0')
    patches.skip_mmpretrain_multimodal_on_new_transformers()
    assert not dependency.WITH_MULTIMODAL


def test_mmpretrain_import_breaks_without_the_fix_on_transformers_5():
    import importlib.metadata as md
    try:
        major = int(md.version('transformers').split('.')[0])
    except md.PackageNotFoundError:
        pytest.skip('transformers is not installed: the defect cannot show')
    if major < 5:
        pytest.skip('transformers < 5: the defect cannot show')
    code = 'import convnextv2_yolo, mmpretrain.models; print("IMPORTED")'
    res = run_tool([PY, '-c', code], check=False,
                   CONVNEXTV2_YOLO_SKIP_PATCHES='skip_mmpretrain_multimodal_on_new_transformers')
    assert res.returncode != 0
    assert 'IMPORTED' in run_tool([PY, '-c', code]).stdout


_DIST = r'''
import torch, torch.distributed as dist, convnextv2_yolo
from mmengine.dist import init_dist
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.model import BaseModel
try:
    init_dist('pytorch', backend='gloo')
    print('INIT_OK')
except Exception as e:
    print('INIT_FAIL', type(e).__name__, e)
    dist.init_process_group('gloo')
class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.linear(inputs)


model = Toy()
try:
    MMDistributedDataParallel(module=model, device_ids=[0])
    print('DDP_OK')
except Exception as e:
    print('DDP_FAIL', type(e).__name__, e)
dist.destroy_process_group()
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason='the defect shows on machines without a GPU')
def test_cpu_distributed_launch():
    def run(**env):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        return run_tool([PY, '-c', _DIST], MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK='0',
                        WORLD_SIZE='1', LOCAL_RANK='0', **env).stdout
    upstream = run(CONVNEXTV2_YOLO_SKIP_PATCHES='cpu_distributed_launch')
    assert 'INIT_FAIL' in upstream and 'DDP_FAIL' in upstream, upstream
    fixed = run()
    assert 'INIT_OK' in fixed and 'DDP_OK' in fixed, fixed


def test_atomic_local_writes(tmp_path):
    from mmengine.fileio.backends.local_backend import LocalBackend
    backend = LocalBackend()
    path = tmp_path / 'epoch_1.pth'
    for put, kept in ((LocalBackend.put.__wrapped__, b''), (LocalBackend.put, b'old')):
        path.write_bytes(b'old')
        with pytest.raises(TypeError):  # a write that fails half-way (here: at once)
            put(backend, 12345, str(path))
        assert path.read_bytes() == kept  # upstream: the old file is gone, truncated in place
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth']  # no temporary file left
    backend.put(b'new', str(path))
    backend.put_text('text', str(tmp_path / 'log.json'))
    assert path.read_bytes() == b'new' and (tmp_path / 'log.json').read_text() == 'text'


def test_remove_old_checkpoints_after_saving(tmp_path):
    from mmengine.fileio.backends.local_backend import LocalBackend
    from mmengine.hooks import CheckpointHook
    from mmengine.logging import MessageHub
    events = []

    class Recording(LocalBackend):
        def remove(self, filepath):
            events.append(('remove', osp.basename(filepath)))
            super().remove(filepath)

    def save_checkpoint(out_dir, filename, *args, **kwargs):
        events.append(('save', filename))
        (tmp_path / filename).write_bytes(b'new')

    runner = types.SimpleNamespace(work_dir=str(tmp_path), save_checkpoint=save_checkpoint,
                                   message_hub=MessageHub.get_instance('test_patches'))
    orders = []
    for method in (CheckpointHook._save_checkpoint_with_step.__wrapped__, CheckpointHook._save_checkpoint_with_step):
        events.clear()
        (tmp_path / 'iter_1.pth').write_bytes(b'old')
        hook = CheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
        hook.out_dir, hook.file_backend = str(tmp_path), Recording()
        hook.keep_ckpt_ids = collections.deque([1], maxlen=1)
        method(hook, runner, 2, {})
        orders.append(list(events))
        assert not (tmp_path / 'iter_1.pth').exists() and (tmp_path / 'iter_2.pth').exists()
    assert orders[0] == [('remove', 'iter_1.pth'), ('save', 'iter_2.pth')]  # upstream: a kill here keeps nothing
    assert orders[1] == [('save', 'iter_2.pth'), ('remove', 'iter_1.pth')]


def _coco():
    from mmdet.datasets.api_wrappers import COCO
    coco = COCO()
    coco.dataset = dict(images=[dict(id=1, width=10, height=10, file_name='a.jpg')],
                        categories=[dict(id=1, name='cat'), dict(id=2, name='dog')],
                        annotations=[dict(id=1, image_id=1, category_id=2, bbox=[0, 0, 5, 5], area=25, iscrowd=0)])
    coco.createIndex()
    return coco


def test_coco_cat_ids_in_requested_order():
    from mmdet.datasets.api_wrappers import COCO
    coco = _coco()
    assert COCO.get_cat_ids.__wrapped__(coco, cat_names=['dog', 'cat']) == [1, 2]  # file order: labels swap
    assert coco.get_cat_ids(cat_names=['dog', 'cat']) == [2, 1]
    assert coco.get_cat_ids(cat_names=['cat', 'dog']) == [1, 2]


def test_coco_empty_results():
    from mmdet.datasets.api_wrappers import COCO
    coco = _coco()
    with pytest.raises(IndexError):
        COCO.loadRes.__wrapped__(coco, [])
    res = coco.loadRes([])
    assert res.getImgIds() == [1] and res.getAnnIds() == [] and sorted(res.getCatIds()) == [1, 2]
