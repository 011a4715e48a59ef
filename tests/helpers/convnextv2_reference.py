"""An independent dense ConvNeXt V2 (the official definition) and the official / FCMAE checkpoint layouts
built from it."""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = dict(depths=[1, 1, 3, 1], channels=[8, 16, 24, 32])


# --------------------------------------------------------------------------- #
# Independent dense reference (official ConvNeXt V2 definition)
# --------------------------------------------------------------------------- #
class RefLayerNorm(nn.Module):

    def __init__(self, dim, eps=1e-6, channels_first=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps, self.channels_first = eps, channels_first

    def forward(self, x):
        if not self.channels_first:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias,
                                self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class RefGRN(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class RefBlock(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = RefLayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = RefGRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class RefConvNeXtV2(nn.Module):

    def __init__(self, depths, dims, num_classes=10):
        super().__init__()
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(3, dims[0], 4, stride=4),
                RefLayerNorm(dims[0], channels_first=True))
        ])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    RefLayerNorm(dims[i], channels_first=True),
                    nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)))
        self.stages = nn.ModuleList(
            nn.Sequential(*[RefBlock(dims[i]) for _ in range(depths[i])])
            for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def stage_outputs(self, x):
        outs = []
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
            outs.append(x)
        return outs


def make_reference(seed=0, arch=ARCH):
    torch.manual_seed(seed)
    ref = RefConvNeXtV2(arch['depths'], arch['channels'])
    ref.arch = dict(arch)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.dim() == 1 and name.endswith('weight'):
                p.copy_(1 + 0.2 * torch.randn_like(p))  # LayerNorm scales
            elif p.dim() == 1 or 'grn' in name:
                p.copy_(0.2 * torch.randn_like(p))  # biases, GRN
            # conv / linear weights keep PyTorch's (asymmetric) random init
    return ref.eval()


# --------------------------------------------------------------------------- #
# Checkpoint builders (one per release layout)
# --------------------------------------------------------------------------- #
def official_state(ref):
    return OrderedDict((k, v.clone()) for k, v in ref.state_dict().items())


def sparse_kernel(w, transpose=True):
    """Exact inverse of the official remap (Minkowski kernel layout)."""
    if transpose:
        w = w.transpose(3, 2)
    cout, cin, kh, kw = w.shape
    if cin == 1 and w.shape[0] > 1:  # depthwise: (kv, C)
        return w.reshape(cout, kh * kw).permute(1, 0).contiguous()
    return w.reshape(cout, cin, kh * kw).permute(2, 1, 0).contiguous()


def fcmae_state(ref, transpose=True):
    """Official FCMAE pre-training layout (sparse encoder + decoder)."""
    sd = official_state(ref)
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith(('norm.', 'head.')):
            continue  # the FCMAE encoder has no final norm / classifier
        parts = k.split('.')
        is_sparse_conv = (k.startswith('downsample_layers.')
                          and parts[1] != '0' and parts[2] == '1') or \
            '.dwconv.' in k
        if is_sparse_conv and parts[-1] == 'weight':
            parts[-1] = 'kernel'
            v = sparse_kernel(v, transpose)
        elif is_sparse_conv:
            v = v.reshape(1, -1)
        elif (k.startswith('downsample_layers.') and parts[1] != '0'
              and parts[2] == '0') or '.norm.' in k:
            parts.insert(-1, 'ln')
        elif '.pwconv' in k:
            parts.insert(-1, 'linear')
        elif '.grn.' in k:
            v = v.reshape(1, -1)
        out['encoder.' + '.'.join(parts)] = v
    c = ref.arch['channels'][-1]
    out['proj.weight'] = torch.randn(16, c, 1, 1)
    out['proj.bias'] = torch.randn(16)
    out['mask_token'] = torch.zeros(1, 16, 1, 1)
    out['decoder.0.dwconv.weight'] = torch.randn(16, 1, 7, 7)
    out['decoder.0.grn.gamma'] = torch.randn(1, 1, 1, 64)
    out['pred.weight'] = torch.randn(32 * 32 * 3, 16, 1, 1)
    return out


def mmpretrain_state(ref):
    """Copy the reference into mmpretrain's own ConvNeXt, module by module."""
    from mmpretrain.models.backbones import ConvNeXt
    mm = ConvNeXt(
        arch=dict(ref.arch), use_grn=True, layer_scale_init_value=0.,
        out_indices=(3, ), gap_before_final_norm=True)
    with torch.no_grad():
        for mm_down, ref_down in zip(mm.downsample_layers,
                                     ref.downsample_layers):
            for a, b in zip(mm_down, ref_down):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
        for mm_stage, ref_stage in zip(mm.stages, ref.stages):
            for a, b in zip(mm_stage, ref_stage):
                for dst, src in ((a.depthwise_conv, b.dwconv),
                                 (a.norm, b.norm),
                                 (a.pointwise_conv1, b.pwconv1),
                                 (a.pointwise_conv2, b.pwconv2)):
                    dst.weight.copy_(src.weight)
                    dst.bias.copy_(src.bias)
                a.grn.gamma.copy_(b.grn.gamma.flatten())
                a.grn.beta.copy_(b.grn.beta.flatten())
        mm.norm3.weight.copy_(ref.norm.weight)
        mm.norm3.bias.copy_(ref.norm.bias)
    state = OrderedDict(
        ('backbone.' + k, v) for k, v in mm.state_dict().items())
    state['head.fc.weight'] = ref.head.weight.detach().clone()
    state['head.fc.bias'] = ref.head.bias.detach().clone()
    return state


def timm_state(ref, conv_mlp=False):
    """timm layout (GRN weight/bias (C,), 1x1-conv MLP when conv_mlp)."""
    out = OrderedDict()
    for k, v in official_state(ref).items():
        parts = k.split('.')
        if k.startswith('downsample_layers.0.'):
            new_k = 'stem.' + '.'.join(parts[2:])
        elif k.startswith('downsample_layers.'):
            new_k = f'stages.{parts[1]}.downsample.' + '.'.join(parts[2:])
        elif k.startswith('stages.'):
            rest = '.'.join(parts[3:])
            rest = {'grn.gamma': 'mlp.grn.weight',
                    'grn.beta': 'mlp.grn.bias'}.get(rest, rest)
            rest = rest.replace('dwconv', 'conv_dw').replace(
                'pwconv1', 'mlp.fc1').replace('pwconv2', 'mlp.fc2')
            new_k = f'stages.{parts[1]}.blocks.{parts[2]}.{rest}'
            if '.grn.' in new_k:
                v = v.flatten()
            if conv_mlp and '.fc' in new_k and new_k.endswith('weight'):
                v = v[:, :, None, None]
        elif k.startswith('norm.'):
            new_k = 'head.norm.' + parts[-1]
        else:
            new_k = 'head.fc.' + parts[-1]
        out[new_k] = v
    return out
