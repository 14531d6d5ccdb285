"""Training losses: RetinaNet anchor assignment + focal loss, and the regressor's mean / spread / flags.

The regressor's mean is fitted with a smooth L1 loss and its spread with a Gaussian NLL on the
detached mean: coupling them lets a large early sigma hide mean errors and slows training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import box_iou, encode

POS_IOU, NEG_IOU = 0.5, 0.4   # RetinaNet paper, section 4


def assign(gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anc: torch.Tensor, n_classes: int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-anchor (class one-hot [A, C], box target [A, 4], positive mask [A], valid mask [A])."""
    a = anc.shape[0]
    cls_t = torch.zeros(a, n_classes)
    box_t = torch.zeros(a, 4)
    if gt_boxes.numel() == 0:
        return cls_t, box_t, torch.zeros(a, dtype=torch.bool), torch.ones(a, dtype=torch.bool)
    iou = box_iou(anc, gt_boxes)                       # [A, G]
    best, idx = iou.max(1)
    pos = best >= POS_IOU
    # Every hand gets at least its best anchor, even when no anchor reaches 0.5 (e.g. a very tall box).
    forced = iou.argmax(0)
    pos[forced] = True
    idx[forced] = torch.arange(gt_boxes.shape[0])
    valid = pos | (best < NEG_IOU)
    cls_t[pos, gt_labels[idx[pos]]] = 1.0
    box_t[pos] = encode(gt_boxes[idx[pos]], anc[pos])
    return cls_t, box_t, pos, valid


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return w * ce * (1 - pt) ** gamma


def detector_loss(cls_logits: torch.Tensor, deltas: torch.Tensor, image_logits: torch.Tensor,
                  cls_t: torch.Tensor, box_t: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor,
                  image_t: torch.Tensor) -> dict[str, torch.Tensor]:
    n_pos = pos.sum().clamp(min=1).float()
    fl = focal_loss(cls_logits, cls_t).sum(-1)
    cls = (fl * valid).sum() / n_pos
    box = F.smooth_l1_loss(deltas[pos], box_t[pos], beta=1 / 9, reduction="sum") / n_pos
    img = F.binary_cross_entropy_with_logits(image_logits, image_t)
    return {"cls": cls, "box": box, "image": img, "total": cls + box + img}


def regressor_loss(age: torch.Tensor, sigma: torch.Tensor, male_logit: torch.Tensor, mature_logit: torch.Tensor,
                   y: torch.Tensor, male: torch.Tensor, mature: torch.Tensor) -> dict[str, torch.Tensor]:
    child = mature < 0.5
    if child.any():
        mean = F.smooth_l1_loss(age[child] / 12.0, y[child] / 12.0, beta=0.5)
        s = sigma[child]
        nll = (torch.log(s) + 0.5 * ((y[child] - age[child].detach()) / s) ** 2).mean()
    else:
        mean = nll = age.sum() * 0.0
    mat = F.binary_cross_entropy_with_logits(mature_logit, mature)
    known = (male == 0) | (male == 1)      # 0.5 marks unknown sex: no sex target
    sex = F.binary_cross_entropy_with_logits(male_logit[known], male[known]) if known.any() else age.sum() * 0.0
    return {"mean": mean, "nll": nll, "mature": mat, "sex": sex,
            "total": mean + 0.1 * nll + 0.5 * mat + 0.1 * sex}
