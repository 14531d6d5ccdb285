"""Reading RSNA-layout folders and the geometry of the training augmentation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from boneage.model.configs import CONFIGS
from boneage.model.data import Sample, augment_detector, prepare, read_rsna

CFG = CONFIGS["demo"]


def test_rsna_folder_with_capitalised_columns_and_nested_pngs_is_read(tmp_path):
    (tmp_path / "boneage-training-dataset").mkdir()
    for i, v in ((1377, 40), (1378, 200)):
        Image.fromarray(np.full((40, 30), v, np.uint8)).save(tmp_path / "boneage-training-dataset" / f"{i}.png")
    (tmp_path / "boneage-training-dataset.csv").write_text("ID,BoneAge,Male\n1377,180,False\n1378,12,True\n9,5,True\n")
    got = list(read_rsna(tmp_path))
    assert [(r["id"], s.boneage, s.male) for r, s in got] == [("1377", 180.0, False), ("1378", 12.0, True)]
    assert got[0][1].image.max() == np.float32(40 / 255) and not got[0][1].has_boxes


def test_rsna_test_set_spelling_with_sex_column_is_read(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "4360.png")
    (tmp_path / "test.csv").write_text("Case ID,Sex,Ground truth bone age (months)\n4360,M,168.9\n")
    (_, s), = read_rsna(tmp_path)
    assert s.male is True and s.boneage == 168.9


def _one_box_sample(label: int) -> Sample:
    img = np.zeros((2 * CFG.detector.image_size,) * 2, np.float32)
    return Sample(img, 100.0, True, "right" if label else "left", [[40.0, 30.0, 120.0, 200.0]], [label])


def test_horizontal_flip_swaps_left_and_right_and_mirrors_the_box():
    p = prepare([_one_box_sample(0)] * 64, CFG)
    _, boxes, labels, _ = augment_detector(p, torch.arange(64), torch.Generator().manual_seed(0), CFG)
    s = CFG.detector.image_size
    plain = [i for i, b in enumerate(boxes) if len(b) and torch.allclose(b[0], torch.tensor([20.0, 15, 60, 100]),
                                                                      atol=0.5)]
    mirrored = [i for i, b in enumerate(boxes) if len(b) and torch.allclose(
        b[0], torch.tensor([s - 60.0, 15, s - 20, 100]), atol=0.5)]
    assert plain and mirrored
    assert all(labels[i].tolist() == [0] for i in plain)
    assert all(labels[i].tolist() == [1] for i in mirrored)


def test_regressor_crops_are_stored_as_positive_left_hands():
    img = np.zeros((200, 200), np.float32)
    img[50:150, 60:80] = 1.0                   # a bar left of the box centre
    inv = Sample(1.0 - img, 60.0, False, "left", [[50.0, 50.0, 150.0, 150.0]], [0], inverted=True)
    right = Sample(img[:, ::-1].copy(), 60.0, False, "right", [[50.0, 50.0, 150.0, 150.0]], [1])
    p = prepare([Sample(img, 60.0, False, "left", [[50.0, 50.0, 150.0, 150.0]], [0]), inv, right], CFG)
    a, b, c = (p.reg_crops[i].float() for i in range(3))
    assert torch.allclose(a, b, atol=2) and torch.allclose(a, c, atol=2)


def test_near_mature_training_phantoms_are_children_in_the_last_three_years_of_the_standards():
    from boneage.model.data import NEAR_MATURE, phantom_samples
    from boneage.phantom.maturity import MATURE_MONTHS

    samples = list(phantom_samples(8, 5, 96, {NEAR_MATURE: 1.0}))
    assert {s.kind for s in samples} == {"left"} and all(len(s.boxes) == 1 for s in samples)
    for s in samples:
        top = MATURE_MONTHS[bool(s.male)]
        assert top - 36.0 <= s.boneage < top, (s.male, s.boneage)
    assert {bool(s.male) for s in samples} == {False, True}
