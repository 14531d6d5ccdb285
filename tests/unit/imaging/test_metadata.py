"""Sex, chronological age, laterality, spacing, height and upload-metadata overrides, including
the edge cases: missing dates, PatientAge only, leap days, study before birth."""

from __future__ import annotations

from datetime import date

import pytest

from boneage.errors import Rejection
from boneage.imaging import ingest, testing
from boneage.imaging.metadata import (
    DAYS_PER_MONTH, months_between, parse_date, parse_patient_age, parse_upload_metadata,
)

from .corpus import source


def _dicom(**tags) -> bytes:
    return testing.dicom_bytes(source(12), bits_stored=12, tags=tags)


def _meta(data: bytes, metadata=None):
    return ingest(data, metadata=metadata, target_long_side=64).meta


@pytest.mark.parametrize("value,expected", [("M", "M"), ("F", "F"), ("O", None), ("", None)])
def test_patient_sex_is_m_f_or_unknown(value, expected):
    meta = _meta(_dicom(PatientSex=value))
    assert meta.sex == expected
    assert meta.sex_source == ("PatientSex" if expected else None)


def test_missing_sex_is_unknown_never_defaulted():
    meta = _meta(_dicom())
    assert meta.sex is None and meta.sex_source is None


def test_unrecognised_patient_sex_is_unknown_with_a_warning():
    meta = _meta(_dicom(PatientSex="X"))
    assert meta.sex is None and any("PatientSex" in w for w in meta.warnings)


def test_upload_sex_overrides_dicom_and_o_means_unknown():
    assert _meta(_dicom(PatientSex="M"), {"x-amz-meta-sex": "F"}).sex == "F"
    meta = _meta(_dicom(PatientSex="M"), {"sex": "O"})
    assert meta.sex is None and meta.sex_source is None


def test_age_from_birth_and_study_dates():
    meta = _meta(_dicom(PatientBirthDate="20150310", StudyDate="20250310"))
    assert meta.chronological_age_months == pytest.approx(3653 / DAYS_PER_MONTH, abs=0.05)
    assert meta.age_source == "PatientBirthDate+StudyDate"


@pytest.mark.parametrize("fallback", ["SeriesDate", "AcquisitionDate", "ContentDate"])
def test_age_falls_back_to_other_dates_when_study_date_is_missing(fallback):
    meta = _meta(_dicom(PatientBirthDate="20200101", **{fallback: "20210101"}))
    assert meta.chronological_age_months == pytest.approx(366 / DAYS_PER_MONTH, abs=0.05)
    assert meta.age_source == f"PatientBirthDate+{fallback}"


def test_invalid_study_date_falls_through_to_the_next_date():
    meta = _meta(_dicom(PatientBirthDate="20200101", StudyDate="20211340", SeriesDate="20210101"))
    assert meta.age_source == "PatientBirthDate+SeriesDate"


@pytest.mark.parametrize("age,months", [("010Y", 120.0), ("018M", 18.0), ("052W", 52 * 7 / DAYS_PER_MONTH),
                                         ("300D", 300 / DAYS_PER_MONTH)])
def test_patient_age_is_the_fallback_without_dates(age, months):
    meta = _meta(_dicom(PatientAge=age))
    assert meta.chronological_age_months == pytest.approx(months, abs=0.05)
    assert meta.age_source == "PatientAge"
    assert any("PatientAge" in w for w in meta.warnings)


def test_dates_win_over_patient_age():
    meta = _meta(_dicom(PatientBirthDate="20200101", StudyDate="20210101", PatientAge="005Y"))
    assert meta.age_source == "PatientBirthDate+StudyDate"


def test_no_age_information_gives_null_with_reason():
    meta = _meta(_dicom(StudyDate="20210101"))
    assert meta.chronological_age_months is None
    assert "no birth date" in meta.age_reason


def test_leap_day_birth_is_handled():
    assert parse_date("20160229") == date(2016, 2, 29)
    meta = _meta(_dicom(PatientBirthDate="20160229", StudyDate="20170228"))
    assert meta.chronological_age_months == pytest.approx(365 / DAYS_PER_MONTH, abs=0.05)
    assert months_between(date(2016, 2, 29), date(2020, 2, 29)) == pytest.approx(48.0, abs=0.01)


def test_impossible_leap_day_is_an_invalid_date_with_reason():
    meta = _meta(_dicom(PatientBirthDate="20170229", StudyDate="20200101"))
    assert meta.chronological_age_months is None
    assert "PatientBirthDate is not a valid date" in meta.age_reason


def test_dicom_study_before_birth_gives_null_age_with_reason():
    meta = _meta(_dicom(PatientBirthDate="20200101", StudyDate="20190101"))
    assert meta.chronological_age_months is None
    assert "before" in meta.age_reason


def test_upload_study_before_birth_is_rejected():
    with pytest.raises(Rejection) as exc:
        _meta(_dicom(), {"birth-date": "2020-01-01", "study-date": "2019-01-01"})
    assert exc.value.reason == "invalid_metadata"


def test_upload_birth_date_combines_with_dicom_study_date():
    meta = _meta(_dicom(StudyDate="20210101"), {"birth-date": "2020-01-01"})
    assert meta.chronological_age_months == pytest.approx(366 / DAYS_PER_MONTH, abs=0.05)
    assert meta.age_source == "metadata:birth-date+StudyDate"


def test_chronological_age_is_kept_to_a_tenth_of_a_month_not_to_the_day():
    # 3653 days = 120.0164 months; two decimals (120.02) pin the age to a third of a day, which
    # with the study date gives back the birth date.
    meta = _meta(_dicom(PatientBirthDate="20150101", StudyDate="20250101"))
    assert meta.chronological_age_months == 120.0
    assert _meta(_dicom(), {"age-months": "100.37"}).chronological_age_months == 100.4


def test_upload_age_months_overrides_everything():
    meta = _meta(_dicom(PatientBirthDate="20200101", StudyDate="20210101"), {"age-months": "100.5"})
    assert meta.chronological_age_months == 100.5 and meta.age_source == "metadata:age-months"


@pytest.mark.parametrize("key,value", [("sex", "X"), ("age-months", "ten"), ("age-months", "-1"),
                                       ("age-months", "nan"), ("birth-date", "2020-02-30"),
                                       ("study-date", "01/02/2020"), ("height-cm", "900"),
                                       ("laterality", "B"), ("study-ref", "x" * 65)])
def test_bad_upload_metadata_is_rejected_with_invalid_metadata(key, value):
    with pytest.raises(Rejection) as exc:
        parse_upload_metadata({key: value})
    assert exc.value.reason == "invalid_metadata" and key in exc.value.message
    assert value not in exc.value.message           # the key and the form, never the value


@pytest.mark.parametrize("key,value,expected", [
    ("birth-date", "03/12/2015", "YYYYMMDD or YYYY-MM-DD"), ("study-date", "2015-13-45", "YYYYMMDD"),
    ("sex", "Zzyzxa", "M, F, O or empty"), ("laterality", "Quentin", "L or R"),
    ("age-months", "Zzyzxa", "number from 0"), ("age-months", "123456", "number from 0"),
    ("height-cm", "999.5", "number from 30"), ("study-ref", "é" * 10, "printable ASCII"),
    ("sex", "M" * 65, "at most 64 characters"),
])
def test_metadata_rejections_name_the_key_and_the_expected_form_never_the_value(key, value, expected):
    with pytest.raises(Rejection) as exc:
        parse_upload_metadata({key: value})
    message = exc.value.message
    assert f"'{key}'" in message and expected in message
    assert value not in message and "999" not in message and "12/2015" not in message


def test_upload_metadata_keys_accept_s3_prefix_case_and_underscores_and_ignore_unknown_keys():
    up = parse_upload_metadata({"X-Amz-Meta-Age_Months": "12", "x-amz-meta-hospital": "h1", "HEIGHT-CM": "80"})
    assert up.age_months == 12.0 and up.height_cm == 80.0


def test_laterality_prefers_image_laterality_then_laterality_then_upload():
    assert _meta(_dicom(ImageLaterality="R", Laterality="L")).laterality == "R"
    meta = _meta(_dicom(Laterality="L"))
    assert (meta.laterality, meta.laterality_source) == ("L", "Laterality")
    meta = _meta(_dicom(ImageLaterality="U"), {"laterality": "left"})
    assert (meta.laterality, meta.laterality_source) == ("L", "metadata")


def test_pixel_spacing_records_the_tag_it_came_from():
    meta = _meta(_dicom(ImagerPixelSpacing=[0.143, 0.143]))
    assert meta.pixel_spacing_mm == (0.143, 0.143) and meta.pixel_spacing_source == "ImagerPixelSpacing"
    meta = _meta(_dicom(PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.143, 0.143]))
    assert meta.pixel_spacing_source == "PixelSpacing"


def test_patient_size_in_metres_becomes_height_in_cm_and_upload_overrides():
    assert _meta(_dicom(PatientSize=1.324)).patient_height_cm == 132.4
    assert _meta(_dicom(PatientSize=13.24)).patient_height_cm is None       # cm typed into metres
    assert _meta(_dicom(PatientSize=1.324), {"height-cm": "133"}).patient_height_cm == 133.0


def test_uids_accession_modality_and_study_reference_are_read():
    meta = _meta(_dicom(AccessionNumber="ACC123", BodyPartExamined="HAND"))
    assert meta.study_instance_uid == "1.2.826.0.1.3680043.8.498.2"
    assert meta.sop_class_uid == testing.DX_FOR_PRESENTATION
    assert (meta.modality, meta.body_part, meta.accession_number) == ("DX", "HAND", "ACC123")
    assert meta.study_reference == "ACC123"
    assert _meta(_dicom(AccessionNumber="ACC123"), {"study-ref": "ref-7"}).study_reference == "ref-7"


def test_no_patient_name_id_or_birth_date_in_metadata():
    meta = _meta(_dicom(PatientName="Doe^Jane", PatientID="MRN999", PatientBirthDate="20150310", StudyDate="20250310"))
    text = repr(meta.as_dict())
    assert "Doe" not in text and "MRN999" not in text and "20150310" not in text


def test_parse_patient_age_rejects_malformed_strings():
    for bad in ("10", "Y", "1000Y", "12X"):
        with pytest.raises(ValueError):
            parse_patient_age(bad)


def test_png_metadata_comes_only_from_upload():
    import numpy as np

    png = testing.png_bytes((source(8)).astype(np.uint8))
    meta = _meta(png, {"sex": "F", "birth-date": "20150101", "study-date": "2025-01-01", "laterality": "L"})
    assert (meta.source_format, meta.sex, meta.sex_source, meta.laterality) == ("png", "F", "metadata", "L")
    assert meta.chronological_age_months == pytest.approx(3653 / DAYS_PER_MONTH, abs=0.05)
    assert _meta(png, {"birth-date": "20150101"}).age_reason == "no study date"


def test_malformed_header_values_never_reach_logs_or_warnings(caplog, recwarn):
    data = _dicom(PatientBirthDate="20179999", StudyDate="20200101", PatientName="Doe^Jane")
    recwarn.clear()
    caplog.clear()
    with caplog.at_level("DEBUG"):
        meta = _meta(data)
    assert "20179999" not in caplog.text and "Doe" not in caplog.text
    assert not any("20179999" in str(w.message) for w in recwarn)
    assert meta.chronological_age_months is None and "20179999" not in repr(meta.as_dict())
