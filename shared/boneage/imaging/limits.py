"""Resource limits for ingest: how large an upload, and how many pixels, we agree to read.

Both are checked against what a file *claims* (file size, DICOM Rows/Columns, PNG IHDR, JPEG and
JPEG 2000 frame headers) before any pixel buffer is allocated, so a 60000x60000 header or a PNG
decompression bomb costs a few kilobytes, not gigabytes. ``memory_budget_bytes`` is the most ingest
may allocate for one input under these limits; the fuzz tests hold ingest to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from boneage.config import IngestSettings

# The defaults are the documented ones (``boneage.config``, where the handler and the commands read
# overrides from the environment); ingest itself never reads the environment.
_DEFAULTS = IngestSettings()


@dataclass(frozen=True)
class Limits:
    # 200 MiB matches the object size the S3 adapter accepts; a large CR is 10-40 MB.
    max_file_bytes: int = _DEFAULTS.max_file_bytes
    # 50 megapixels: a 43x43 cm detector at 0.1 mm is ~18.5 MP, so this leaves room without
    # letting one image take the whole Lambda memory (50 MP x 2 B raw + 4 B float = 300 MB).
    max_pixels: int = _DEFAULTS.max_pixels

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("limits must be positive")

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> Limits:
        return cls(max_file_bytes=ingest.max_file_bytes, max_pixels=ingest.max_pixels)

    @property
    def memory_budget_bytes(self) -> int:
        """Upper bound on what one ingest allocates: a few copies of the file (parse, inflate,
        codestream) plus, per pixel, 3 samples x 8 bytes for the widest intermediate (float64 RGB)
        and a float32 output."""
        return 4 * self.max_file_bytes + 28 * self.max_pixels + (16 << 20)
