"""Procedural hand radiograph phantoms whose anatomy matures with bone age and sex.

No real radiographs can be used here, so the model trains and is evaluated on these. Each phantom
is a postero-anterior left-hand film (thumb on the image's right) with radius, ulna, eight carpals,
five metacarpals and fourteen phalanges, drawn as projected bone and soft-tissue thickness:

- maturity (``maturity.py``): carpal centres appear at sex-specific bone ages, epiphyses appear,
  widen to their metaphyses, cap them and fuse (girls earlier than boys), cartilaginous ends shrink
  and the hand grows; timings follow the domain brief's table (radiopaedia, fpnotebook,
  Gilsanz-Ratib) and the GP Brush Foundation SDs give chronological age = bone age - N(0, SD);
- individual variation (``anatomy.py``): hand size, bone lengths and widths, finger spread, carpal
  positions, bone density, soft tissue and a per-centre maturity jitter, so age is never readable
  from a single feature;
- nuisances (``render.py``): scale, position, rotation (+-32 deg), exposure, heel effect, blur,
  noise, collimation edges, lead markers and burnt-in text, gamma, inversion;
- kinds: "left", "right" (mirrored), "two_hands", "non_hand" (foot, chest, abstract) and
  "adult" (fully fused), flagged in the labels.

``render_sample`` draws one image with labels (about 10-20 ms at 256-512 px on one core, fast
enough to train on the fly); ``generate_dataset`` (and ``boneage phantom``) writes a set in the
RSNA Bone Age layout (``labels.csv`` + ``images/``) and, optionally, DICOM files. No real patient
data is involved anywhere. ``python -m boneage.phantom.bench`` times the renderer.
"""

from __future__ import annotations

from boneage.phantom.dataset import DEFAULT_MIX, generate_dataset
from boneage.phantom.render import KINDS, NON_HAND_SUBTYPES, render_sample

__all__ = ["DEFAULT_MIX", "KINDS", "NON_HAND_SUBTYPES", "generate_dataset", "render_sample"]
