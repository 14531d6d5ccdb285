"""Model tests run single-threaded (the CI box has two cores shared by every suite)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
