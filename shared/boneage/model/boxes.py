"""Detector post-processing that lives outside the exported network: anchors, box coding, NMS.

Kept in plain torch (torchvision does not import beside the CPU torch here) and written for the few
hundred candidate boxes a hand image yields, where a simple greedy NMS is fast enough.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .configs import DetectorConfig

# Box deltas are clamped so a wild prediction cannot overflow exp().
_MAX_LOG_SCALE = math.log(1000.0 / 16)


@lru_cache(maxsize=8)
def anchors(cfg: DetectorConfig) -> torch.Tensor:
    """All anchors as [A, 4] (x0, y0, x1, y1), ordered level, row, column, anchor (the heads' order)."""
    out = []
    for stride, size in zip(cfg.strides, cfg.anchor_sizes):
        n = math.ceil(cfg.image_size / stride)
        shapes = []
        for scale in cfg.anchor_scales:
            for aspect in cfg.anchor_aspects:
                area = (size * scale) ** 2
                w = math.sqrt(area / aspect)
                shapes.append((w, w * aspect))
        wh = torch.tensor(shapes, dtype=torch.float32)                   # [k, 2]
        c = (torch.arange(n, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        ctr = torch.stack([cx, cy], -1).reshape(-1, 1, 2)                 # [n*n, 1, 2]
        box = torch.cat([ctr - wh / 2, ctr + wh / 2], -1)                 # [n*n, k, 4]
        out.append(box.reshape(-1, 4))
    return torch.cat(out, 0)


def encode(gt: torch.Tensor, anc: torch.Tensor) -> torch.Tensor:
    """Regression targets (dx, dy, dlogw, dlogh) of boxes ``gt`` against anchors ``anc`` (both [N, 4])."""
    aw, ah = anc[:, 2] - anc[:, 0], anc[:, 3] - anc[:, 1]
    ax, ay = anc[:, 0] + aw / 2, anc[:, 1] + ah / 2
    gw, gh = (gt[:, 2] - gt[:, 0]).clamp(min=1), (gt[:, 3] - gt[:, 1]).clamp(min=1)
    gx, gy = gt[:, 0] + gw / 2, gt[:, 1] + gh / 2
    return torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah)], 1)


def decode(deltas: torch.Tensor, anc: torch.Tensor) -> torch.Tensor:
    aw, ah = anc[:, 2] - anc[:, 0], anc[:, 3] - anc[:, 1]
    ax, ay = anc[:, 0] + aw / 2, anc[:, 1] + ah / 2
    dw = deltas[:, 2].clamp(max=_MAX_LOG_SCALE)
    dh = deltas[:, 3].clamp(max=_MAX_LOG_SCALE)
    x, y = ax + deltas[:, 0] * aw, ay + deltas[:, 1] * ah
    w, h = aw * torch.exp(dw), ah * torch.exp(dh)
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU, [N, 4] x [M, 4] -> [N, M]."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Greedy class-agnostic NMS; returns kept indices, best first."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    while order.numel():
        i = int(order[0])
        keep.append(i)
        if order.numel() == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou]
    return torch.tensor(keep, dtype=torch.long)


def postprocess(cls_logits: torch.Tensor, deltas: torch.Tensor, cfg: DetectorConfig, *,
                score_threshold: float, nms_iou: float, pre_nms: int = 200
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's head outputs ([A, C], [A, 4]) -> (boxes [K, 4], scores [K], labels [K]) after NMS.

    NMS is class-agnostic on purpose: a left and a right detection on the same hand are one hand.
    """
    scores_all = torch.sigmoid(cls_logits.float())
    scores, labels = scores_all.max(1)
    idx = torch.nonzero(scores >= score_threshold).flatten()
    if idx.numel() > pre_nms:
        idx = idx[scores[idx].topk(pre_nms).indices]
    boxes = decode(deltas[idx].float(), anchors(cfg)[idx])
    keep = nms(boxes, scores[idx], nms_iou)
    return boxes[keep], scores[idx][keep], labels[idx][keep]
