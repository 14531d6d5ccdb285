"""DICOM header strings and upload metadata values, bounded and cleaned before anything keeps them.

A header or metadata value is the sender's text and ends up in the record, the notification and the
report. Two rules make that safe whatever the sender wrote:

- **Length.** A DICOM string longer than its value representation allows (PS3.5 section 6.2,
  Table 6.2-1) is not a valid value; it is dropped with a warning that names the attribute and the
  limit, never the value. Cutting it short instead would make a different, plausible-looking
  reference (a 16-character prefix of someone else's accession number). Upload metadata values are
  bounded the same way (``MAX_METADATA_VALUE_CHARS``; S3 allows 2 KB of user metadata in all).
- **Characters.** Control and format characters are removed (``boneage.safetext.clean``), so a
  value can neither inject lines into an e-mail or a log nor reverse how it displays.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from boneage.safetext import clean

# Maximum value length per VR, in characters (bytes for the single-byte-only VRs), PS3.5 Table 6.2-1.
# PN: 64 per component group, three groups joined by "=". Unlimited VRs (UC, UR, UT) get our own cap:
# nothing we read from them is re-emitted at more than a paragraph.
VR_MAX_CHARS = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
    "PN": 3 * 64 + 2, "SH": 16, "ST": 1024, "TM": 14, "UI": 64, "UC": 1024, "UR": 1024, "UT": 1024,
}
MAX_METADATA_VALUE_CHARS = 64       # the longest metadata value we accept: study-ref (LO)


def _vr(ds: Dataset, keyword: str) -> str | None:
    try:
        element = ds[keyword]
        return str(element.VR)
    except Exception:
        try:
            return str(dictionary_VR(keyword))
        except Exception:
            return None


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)     # DICOM's own value separator
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def dicom_text(ds: Dataset, keyword: str, warnings: list[str]) -> str | None:
    """A header string, cleaned; ``None`` when absent, empty, unreadable or longer than its VR allows
    (the last two with a warning naming the attribute, never the value)."""
    try:
        value = ds.get(keyword)
    except Exception:
        warnings.append(f"{keyword} is unreadable")
        return None
    if value is None:
        return None
    text = _as_text(value).strip()
    limit = VR_MAX_CHARS.get(_vr(ds, keyword) or "", VR_MAX_CHARS["UT"])
    if any(len(part) > limit for part in text.split("\\")):       # the limit is per value
        warnings.append(f"{keyword} is longer than its DICOM limit of {limit} characters; ignored")
        return None
    return clean(text) or None



_CODE = re.compile(r"[A-Z0-9 _]{1,16}")             # CS: the default repertoire's upper case, digits, space, _
_UID = re.compile(r"[0-9.]{1,64}")


def shown(value: Any, kind: str = "CS") -> str:
    """``value`` for a rejection message when it is a well-formed code (CS) or UID (UI) - a term from
    a closed vocabulary, useful to the sender and naming nobody - else a placeholder. A message is
    stored and notified, so it must never carry free text from a header."""
    text = "" if value is None else str(value).strip()
    pattern = _UID if kind == "UI" else _CODE
    return text if pattern.fullmatch(text) else f"(not a valid {kind} value)"
