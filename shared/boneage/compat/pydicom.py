"""pydicom internals ingest relies on (tested on pydicom 3.0; pinned below 3.1).

``read_file_meta``: the File Meta group of a DICOM file held in memory. pydicom's public
``read_file_meta_info()`` only takes a path; it reads the preamble and then calls the private
``_read_file_meta_info`` on the open file, which is what this does on a file object.
``tests/unit/compat/test_compat_pydicom.py`` pins it.
"""

from __future__ import annotations

from typing import BinaryIO

from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info, read_preamble


def read_file_meta(fp: BinaryIO) -> FileMetaDataset:
    """The File Meta elements of the Part 10 file at ``fp``'s start; ``fp`` is left at the dataset.

    Raises what pydicom raises for a file without a preamble or with an unreadable meta group.
    """
    read_preamble(fp, False)
    return _read_file_meta_info(fp)


__all__ = ["read_file_meta"]
