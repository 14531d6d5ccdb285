"""What the DICOM results may copy from an uploaded source: its values made to conform, or left out.

The SC and the SR copy the source's patient and study modules, its UIDs and its equipment
(institution, station, manufacturer) into objects that go back to the hospital's archive. The
source is whatever a modality or a user sent: values longer than their VR allows, control
characters, a backslash (the value delimiter) inside a single-valued attribute, a VR or a Python
type that does not match the data dictionary, dates that are not dates. ``conforming_copy`` makes
the copy the builders see; the rules, in order, for every public element of the source:

1. Private elements and retired or unknown tags are left out (no builder copies them).
2. Binary and numeric VRs (OB, OW, US, FL, ...: pixel data and its description) pass unchanged:
   they cannot carry text and the builders need them as they are.
3. The element's VR must be one the data dictionary allows for its tag, and its number of values
   must fit the dictionary's VM (a backslash in a single-valued attribute splits it in two).
4. Each value must be valid for its VR: pydicom's own validators (``pydicom.valuerep.VALIDATORS``:
   type, maximum length, character set of CS/AE/UI/DS/IS/AS/DA/TM/DT), and what pydicom does not
   check, from PS3.5 section 6.2: no control character (ST, LT and UT may hold TAB, LF, FF and
   CR; ESC only under an ISO 2022 Specific Character Set, whose code extensions it announces), at
   most 64 characters per PN component group and 5 components, a date or time that is one value
   (not a query range; a DT's "-" only in a UTC offset) and exists on the calendar, a UID without
   padding. Without a Specific Character Set only the default repertoire (ASCII) is valid.
5. The one repair: free text whose meaning survives it (``_is_prose``: descriptions, comments,
   histories, the institution's name and address) has its forbidden control characters replaced
   by spaces and is cut to its VR's maximum length. Identifiers, names, codes, dates and UIDs are
   never altered: a cut patient ID or accession number could name another patient or study.
6. Whatever is still invalid is left out. A sequence is left out whole when anything inside it is
   (a partial item may lack what its own module requires).
7. Patient Sex must also be one highdicom accepts (M, F, O); a Specific Character Set highdicom
   refuses is left out (and rule 4 then holds the text to ASCII).

What the results *must* reference (SOP Class, SOP Instance, Study and Series Instance UIDs) is not
left out quietly: ``derived.prepare_source`` refuses a source whose UIDs are missing or invalid
(``UnusableSource``), and the caller delivers the PNG report alone. So it does for a patient ID or
name that the source has but that is not valid DICOM: results filed in the patient's study under an
empty identity would not reconcile with the rest of the study (the archive would reject, orphan or
flag them). The results join the source's study or none: a study UID of our own making would file
the patient's results under a study the archive has never seen. Nothing here logs: the values are patient data.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, NamedTuple

from pydicom.datadict import dictionary_is_retired, dictionary_VM, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import DA, DT, MAX_VALUE_LEN, TM, VALIDATORS, PersonName

from boneage.compat.highdicom import specific_character_set

# String VRs; everything else is binary or numeric (rule 2), or a sequence.
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                         "UC", "UI", "UR", "UT"})
_TEXT_VRS = frozenset({"LT", "ST", "UT"})      # single-valued, backslash allowed, a few control characters
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")   # all but TAB LF FF CR ESC
_FORBIDDEN_ELSEWHERE = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f]")              # all but ESC
_ESC = "\x1b"
# A DT's UTC offset, &ZZXX, of at most 14 hours (PS3.5 table 6.2-1); a "-" anywhere else is a range.
_DT_WITH_OFFSET = re.compile(r"[0-9.]+[+-](0\d|1[0-4])[0-5]\d")


class _Repertoire(NamedTuple):
    """What characters the copy's Specific Character Set allows beyond the rules for every VR."""
    ascii_only: bool        # no usable Specific Character Set: the default repertoire only
    escape: bool            # ESC only announces ISO 2022 code extensions
_PROSE_ENDINGS = ("Description", "Comments", "History", "Comment")
_PROSE_KEYWORDS = frozenset({"InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName"})
_PROSE_VRS = frozenset({"LO", "LT", "ST", "UC", "UT"})
_SEX = frozenset({"M", "F", "O", ""})
_DATE_TIME = {"DA": DA, "DT": DT, "TM": TM}


class _Invalid(Exception):
    """A value that cannot be made to conform; its element is left out."""


def _is_prose(keyword: str, vr: str) -> bool:
    return vr in _PROSE_VRS and (keyword in _PROSE_KEYWORDS or keyword.endswith(_PROSE_ENDINGS))


def _vm_allows(vm: str, count: int) -> bool:
    """Whether ``count`` values fit a dictionary VM such as "1", "1-3", "2-2n", "1-n"."""
    if count == 0:
        return True             # an empty value is always valid
    low, _, high = vm.partition("-")
    if not high:
        return count == int(low)
    if count < int(low):
        return False
    if high.endswith("n"):
        step = int(high[:-1] or 1)
        return count % step == 0
    return count <= int(high)


def _repair_prose(vr: str, text: str) -> str:
    forbidden = _FORBIDDEN_IN_TEXT if vr in _TEXT_VRS else _FORBIDDEN_ELSEWHERE
    text = forbidden.sub(" ", text).rstrip()
    limit = MAX_VALUE_LEN.get(vr)
    return text[:limit].rstrip() if limit else text


def _check_pn(text: str) -> None:
    groups = text.split("=")
    if len(groups) > 3 or any(len(g) > 64 or len(g.split("^")) > 5 for g in groups):
        raise _Invalid


def _conform_value(keyword: str, vr: str, value: Any, rep: _Repertoire) -> Any:
    """``value`` (one value of a string VR) made valid, or _Invalid."""
    if isinstance(value, PersonName):
        value = str(value)
    elif vr in ("DS", "IS") and not isinstance(value, (str, bytes)):
        # pydicom holds DS and IS as numbers; validate the string that will be written.
        value = getattr(value, "original_string", None) or str(value)
    elif vr in _DATE_TIME and isinstance(value, (datetime.date, datetime.time)):
        value = str(_DATE_TIME[vr](value))
    if not isinstance(value, str):
        raise _Invalid             # bytes (undecoded), numbers in a text VR, anything else
    if _is_prose(keyword, vr):
        value = _repair_prose(vr, value)
    if (rep.ascii_only and not value.isascii()) or (not rep.escape and _ESC in value):
        raise _Invalid
    forbidden = _FORBIDDEN_IN_TEXT if vr in _TEXT_VRS else _FORBIDDEN_ELSEWHERE
    if forbidden.search(value):
        raise _Invalid
    validator = VALIDATORS.get(vr)
    if validator is not None and not validator(vr, value)[0]:
        raise _Invalid
    if vr == "PN":
        _check_pn(value)
    elif vr in _DATE_TIME and value:
        stripped = value.strip()
        if "-" in stripped[:1] or (vr != "DT" and "-" in value) \
                or (vr == "DT" and "-" in stripped and not _DT_WITH_OFFSET.fullmatch(stripped)):
            raise _Invalid          # a query range, not a value
        try:
            _DATE_TIME[vr](value)   # on the calendar, not only the right digits
        except ValueError as exc:
            raise _Invalid from exc
    return value


def _conform_element(elem: DataElement, rep: _Repertoire) -> DataElement:
    """``elem`` as it may be copied (a new element where a value changed), or _Invalid."""
    tag = elem.tag
    try:
        allowed = {vr.strip() for vr in dictionary_VR(tag).split(" or ")}
        vm = dictionary_VM(tag)
    except KeyError as exc:
        raise _Invalid from exc
    if elem.VR not in allowed:
        raise _Invalid
    if elem.VR == "SQ":
        return DataElement(tag, "SQ", [_conform_dataset(item, rep, strict=True) for item in elem.value])
    if elem.VR not in _STRING_VRS or elem.value is None or elem.value == "":
        return elem
    values = list(elem.value) if isinstance(elem.value, MultiValue | list | tuple) else [elem.value]
    if elem.VR in _TEXT_VRS and len(values) != 1:
        raise _Invalid
    if not _vm_allows(vm, len(values)):
        raise _Invalid
    keyword = keyword_for_tag(tag)
    conformed = [_conform_value(keyword, elem.VR, v, rep) for v in values]
    if keyword == "PatientSex" and conformed[0] not in _SEX:
        raise _Invalid
    if conformed == values:
        return elem
    return DataElement(tag, elem.VR, conformed if len(conformed) > 1 else conformed[0])


def _conform_dataset(source: Dataset, rep: _Repertoire, strict: bool) -> Dataset:
    """The conforming elements of ``source``; ``strict`` (inside a sequence): any invalid one is _Invalid."""
    out = Dataset()
    for tag in source.keys():
        if tag.is_private or not tag.element or _retired_or_unknown(tag):
            continue
        try:
            # Converts a raw element, decoding text with the source's character set.
            elem = source[tag]
        except Exception:  # noqa: BLE001 - an element pydicom cannot even read is left out
            if strict:
                raise _Invalid from None
            continue
        try:
            out.add(_conform_element(elem, rep))
        except _Invalid:
            if strict:
                raise
    return out


def _retired_or_unknown(tag: BaseTag) -> bool:
    try:
        return dictionary_is_retired(tag)
    except KeyError:
        return True         # unknown to the dictionary: no VR to validate against


def conforming_copy(source: Dataset) -> Dataset:
    """A new dataset with ``source``'s elements that conform (see the module docstring); ``source``
    is not modified. Its file meta and preamble are not copied (the builders make their own)."""
    charset = source.get("SpecificCharacterSet")
    keep_charset = False
    if charset is not None and charset != "":
        try:
            specific_character_set(charset)
            keep_charset = True
        except (ValueError, TypeError):
            pass
    terms = [charset] if isinstance(charset, str) else list(charset or [])
    rep = _Repertoire(ascii_only=not keep_charset,
                      escape=keep_charset and any("2022" in str(t) for t in terms))
    out = _conform_dataset(source, rep, strict=False)
    if not keep_charset and "SpecificCharacterSet" in out:
        del out.SpecificCharacterSet
    return out


__all__ = ["conforming_copy"]
