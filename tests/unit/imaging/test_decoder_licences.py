"""The README's decoder licence table says what each installed wheel's metadata says, and nothing
GPL is in the default install (which is what the service image installs)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# OSI classifiers -> the SPDX name the README uses, for wheels that state only a classifier.
CLASSIFIER_SPDX = {"MIT License": "MIT", "GNU General Public License v3 (GPLv3)": "GPL V3.0"}


def _wheel_licence(distribution: str) -> str:
    meta = importlib.metadata.metadata(distribution)
    for field in ("License-Expression", "License"):
        value = (meta.get(field) or "").strip()
        if value and "\n" not in value and len(value) < 40:
            return value
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: OSI Approved :: "):
            return CLASSIFIER_SPDX[classifier.rsplit(" :: ", 1)[1]]
    raise AssertionError(f"{distribution} states no licence")


def _readme_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index("| decoder package | licence (wheel metadata) |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = (cells[1], cells[2])
    return rows


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_readme_decoder_licences_match_the_installed_wheels_metadata():
    table = _readme_table()
    assert {"imagecodecs", "pydicom", "pylibjpeg-openjpeg", "pyjpegls", "pillow"} <= set(table)
    for distribution, (licence, _in_image) in table.items():
        assert _wheel_licence(distribution) == licence, distribution


def test_nothing_gpl_is_in_the_default_install_or_the_image():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The Dockerfile installs exactly these two lists (read from pyproject.toml).
    installed = {_requirement_name(r) for r in project["dependencies"] + project["optional-dependencies"]["aws"]}
    table = _readme_table()
    for distribution, (licence, in_image) in table.items():
        assert (distribution in installed) == (in_image == "yes"), distribution
        if in_image == "yes":
            assert "GPL" not in licence, distribution
    assert "pylibjpeg-libjpeg" not in installed
    assert "imagecodecs" in installed
