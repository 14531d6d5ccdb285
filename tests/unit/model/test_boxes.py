"""Anchor coding, IoU and NMS: the post-processing that lives outside the exported detector."""

from __future__ import annotations

import math

import torch

from boneage.model.boxes import anchors, box_iou, decode, encode, nms
from boneage.model.configs import CONFIGS

DET = CONFIGS["demo"].detector


def test_anchor_count_matches_the_grid():
    n = sum(math.ceil(DET.image_size / s) ** 2 for s in DET.strides) * DET.anchors_per_cell
    assert anchors(DET).shape == (n, 4)


def test_encode_then_decode_returns_the_boxes():
    anc = anchors(DET)[:50]
    gt = torch.tensor([[10.0, 20.0, 70.0, 120.0]]).repeat(50, 1)
    torch.testing.assert_close(decode(encode(gt, anc), anc), gt, rtol=1e-4, atol=1e-3)


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [5.0, 0.0, 15.0, 10.0]])
    torch.testing.assert_close(box_iou(a, b)[0], torch.tensor([1.0, 0.0, 1 / 3]))


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_hands():
    boxes = torch.tensor([[0.0, 0.0, 50.0, 100.0], [2.0, 1.0, 52.0, 99.0], [60.0, 0.0, 110.0, 100.0]])
    scores = torch.tensor([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
