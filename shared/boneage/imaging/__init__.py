"""Imaging: read DICOM, PNG and JPEG radiographs into one normalised image plus metadata.

``ingest(data, metadata=..., limits=..., target_long_side=...) -> Radiograph`` is the
entry point; bad input raises ``boneage.errors.Rejection`` with a stable reason code.
"""

from boneage.imaging.ingest import ingest
from boneage.imaging.limits import Limits
from boneage.imaging.types import Radiograph, StudyMetadata

__all__ = ["Limits", "Radiograph", "StudyMetadata", "ingest"]
