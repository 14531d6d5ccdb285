"""Text that came from outside (DICOM headers, S3 metadata, object keys) made safe to re-emit.

Every string the service writes back out - the record, the notification, log lines, the PNG report -
may have started in a header or metadata field a sender controls. ``clean`` removes what could change
how that text is read: control characters (C0, DEL, C1) that inject lines into e-mail or logs, and
Unicode format characters such as the bidirectional overrides (U+202A-U+202E, U+2066-U+2069) that make
a reference display as something else. Line and paragraph separators become spaces, runs of spaces
collapse. Pure standard library, so every layer may use it.
"""

from __future__ import annotations

import re
import unicodedata

# Cc: C0, DEL, C1. Cf: format characters (bidi overrides and isolates, zero-width joiners, BOM).
# Cs/Co: lone surrogates and private use, which no reference needs and some encoders reject.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co"})
_SPACES = re.compile(r"\s+")
_SEPARATORS = "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029"


class _Table(dict):
    """``str.translate`` table built as characters are met: each code point is classified once,
    after which a 3 MB value cleans at C speed."""

    def __missing__(self, cp: int) -> int | str | None:
        ch = chr(cp)
        if ch in _SEPARATORS:
            out: int | str | None = " "     # a separator still separates: "A\nB" reads "A B", not "AB"
        elif unicodedata.category(ch) in _DROPPED:
            out = None
        else:
            out = cp
        if cp < 0x10000:                    # the table stays small (the BMP at most) whatever arrives
            self[cp] = out
        return out


_TABLE = _Table()


def clean(text: str) -> str:
    """``text`` without control or format characters, whitespace collapsed, ends stripped."""
    if text.isascii() and text.isprintable():
        return text.strip()                # the common case, without a per-character pass
    return _SPACES.sub(" ", text.translate(_TABLE)).strip()


def is_clean(text: str) -> bool:
    """True when ``clean`` would not change what a reader sees (tests and guards use it)."""
    return text.translate(_TABLE) == text


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= max_chars else text[: max(0, max_chars - 3)].rstrip() + "..."
