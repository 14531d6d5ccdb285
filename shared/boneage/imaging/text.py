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

The DICOM side is ``boneage.imaging.dicom.attributes.header_text``; this module holds the limits and
what a rejection message may quote.
"""

from __future__ import annotations

import re
from typing import Any


# Maximum value length per VR, in characters (bytes for the single-byte-only VRs), PS3.5 Table 6.2-1.
# PN: 64 per component group, three groups joined by "=". Unlimited VRs (UC, UR, UT) get our own cap:
# nothing we read from them is re-emitted at more than a paragraph.
VR_MAX_CHARS = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64, "LT": 10240,
    "PN": 3 * 64 + 2, "SH": 16, "ST": 1024, "TM": 14, "UI": 64, "UC": 1024, "UR": 1024, "UT": 1024,
}
MAX_METADATA_VALUE_CHARS = 64       # the longest metadata value we accept: study-ref (LO)


_CODE = re.compile(r"[A-Z0-9 _]{1,16}")             # CS: the default repertoire's upper case, digits, space, _
_UID = re.compile(r"[0-9.]{1,64}")


def shown(value: Any, kind: str = "CS") -> str:
    """``value`` for a rejection message when it is a well-formed code (CS) or UID (UI) - a term from
    a closed vocabulary, useful to the sender and naming nobody - else a placeholder. A message is
    stored and notified, so it must never carry free text from a header."""
    text = "" if value is None else str(value).strip()
    pattern = _UID if kind == "UI" else _CODE
    return text if pattern.fullmatch(text) else f"(not a valid {kind} value)"
