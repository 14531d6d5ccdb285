"""Deploy form of a network: the same function in fewer, simpler operators, for inference and export.

``deploy_form`` returns a new eval-mode module (the input is left untouched) in which
  * every RepVGG block is re-parameterised into one 3x3 conv with bias + ReLU;
  * every Conv2d followed by BatchNorm2d is folded into one conv with bias (eval-mode statistics);
  * the detector's class and box heads are unshared: one copy per pyramid level, so each conv is
    called once per forward (torch.export graphs then quantize with PT2E's X86InductorQuantizer).
Outputs match ``net.eval()`` to float rounding. The result is not meant to be trained (no BatchNorm,
duplicated head weights) and its state-dict keys differ from the checkpoint's: load weights into the
training-form network first, then convert.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from boneage.compat.torch import BatchNormBase

from .backbones.repvgg import RepVGGBlock
from .detector import HandDetector, _Head


def deploy_form(net: nn.Module) -> nn.Module:
    """A new eval-mode, inference-only module numerically equivalent to ``net.eval()``."""
    m = _convert(copy.deepcopy(net).eval())
    left = sorted({type(x).__name__ for x in m.modules()
                   if isinstance(x, (BatchNormBase, RepVGGBlock, _Head))})
    if left:
        raise ValueError(f"deploy_form cannot simplify {', '.join(left)} in {type(net).__name__}")
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def _convert(m: nn.Module) -> nn.Module:
    if isinstance(m, RepVGGBlock):
        return m.reparameterized()
    for name, child in m.named_children():
        setattr(m, name, _convert(child))
    if isinstance(m, HandDetector):
        n = len(m.cfg.strides)
        m.cls_head, m.box_head = m.cls_head.unshared(n), m.box_head.unshared(n)
    if isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
        return _fold_conv_bn(m)
    return m


def _fold_conv_bn(seq: nn.Sequential) -> nn.Sequential:
    """Fold each Conv2d -> BatchNorm2d pair of a Sequential; returns a plain Sequential."""
    layers, out, i = list(seq), [], 0
    while i < len(layers):
        a = layers[i]
        b = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(a, b))
            i += 2
        else:
            out.append(a)
            i += 1
    return nn.Sequential(*out)
