"""Shared test inputs: small deterministic radiographs and the windows that make expected
outputs a closed formula (PS3.3 C.11.2.1.3.2, LINEAR_EXACT), independent of the code under test."""

from __future__ import annotations

import numpy as np

from boneage.imaging import testing

SEED = 20261125
ROWS, COLUMNS = 96, 80


def source(bits: int = 12, seed: int = SEED, rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    return testing.radiograph_like(np.random.default_rng(seed), rows, columns, bits=bits)


def exact_window(bits: int) -> dict:
    """A window covering the whole stored range exactly: output = (x - c) / w + 0.5."""
    return {"WindowCenter": 2 ** (bits - 1), "WindowWidth": 2 ** bits, "VOILUTFunction": "LINEAR_EXACT"}


def expected_exact(x: np.ndarray, bits: int, invert: bool = False) -> np.ndarray:
    out = np.clip((x.astype(np.float64) - 2 ** (bits - 1)) / 2 ** bits + 0.5, 0.0, 1.0)
    return 1.0 - out if invert else out


class AnyModality(frozenset):
    """Stands in for ACCEPTED_MODALITIES to push CT/MR/US test files through the decoder too."""

    def __contains__(self, item: object) -> bool:
        return True
