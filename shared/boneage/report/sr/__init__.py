"""The Comprehensive SR (TID 1500) of one result: bone age, its interval, CA, BA - CA, SDS, flag, height.

``build_sr(source, result)`` is the one entry point. The SR is highdicom's (``builder``), made in a
few milliseconds from a template per result shape (``template``), byte for byte what highdicom gives
for the same ``SRIdentity``; a result the template cannot represent exactly is built from scratch.
What the SR says (codes, measurements) is in ``content``.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from boneage.report.sr import builder, template
from boneage.report.sr.content import SRIdentity
from boneage.result import AssessmentResult


def build_sr(source: Dataset, result: AssessmentResult, identity: SRIdentity | None = None) -> bytes:
    """The encoded SR for ``source`` (the radiograph's dataset) and ``result``, in a new series of its study."""
    identity = identity or SRIdentity.fresh()
    if not template.can_render(result):
        return builder.build_from_scratch(source, result, identity)
    return template.render(source, result, identity)


__all__ = ["SRIdentity", "build_sr"]
