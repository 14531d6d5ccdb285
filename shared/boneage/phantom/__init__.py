"""Procedural hand radiograph phantoms whose anatomy matures with bone age and sex.

``render_sample`` draws one image with labels (fast enough to train on the fly);
``generate_dataset`` writes a set in the RSNA Bone Age layout (``labels.csv`` + ``images/``) and,
optionally, DICOM files. No real patient data is involved anywhere.
"""

from __future__ import annotations

from boneage.phantom.render import KINDS, NON_HAND_SUBTYPES, render_sample

__all__ = ["KINDS", "NON_HAND_SUBTYPES", "render_sample", "generate_dataset"]


def __getattr__(name: str):
    # The dataset writer pulls in pydicom; import it only when asked for.
    if name == "generate_dataset":
        from boneage.phantom.dataset import generate_dataset
        return generate_dataset
    raise AttributeError(name)
