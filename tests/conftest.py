"""Process-wide state that one test must not leak into the next.

The engine flushes denormals (``torch.set_flush_denormal(True)``: random-weight networks otherwise
run several times slower). That sets the CPU's FTZ/DAZ flags for the whole process, and hypothesis
then refuses to generate floats, so every test starts with them cleared.
"""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def _clear_flush_denormal():
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
