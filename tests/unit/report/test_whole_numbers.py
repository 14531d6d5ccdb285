"""DynamoDB returns whole-valued numbers without a fraction (178.0 comes back as 178): a result
rebuilt from its record must give the same report text and the same SR as the one assessed."""

from __future__ import annotations

import dataclasses
import datetime

from boneage.report.sr import SRIdentity, build_sr
from boneage.report.png import report_lines

from .cases import make_case


def _pair(rng):
    radiograph, _, result = make_case(rng)
    floats = dataclasses.replace(result, bone_age_months=131.0, bone_age_interval_months=[123.0, 139.0],
                                 chronological_age_months=122.0, predicted_adult_height_cm=156.0, sds=1.0,
                                 sds_interval=[0.0, 2.0])
    ints = dataclasses.replace(floats, bone_age_months=131, bone_age_interval_months=[123, 139],
                               chronological_age_months=122, predicted_adult_height_cm=156, sds=1,
                               sds_interval=[0, 2])
    return radiograph, floats, ints


def test_report_text_does_not_depend_on_the_number_type(rng):
    _, floats, ints = _pair(rng)
    assert report_lines(ints) == report_lines(floats)


def test_structured_report_does_not_depend_on_the_number_type(rng):
    radiograph, floats, ints = _pair(rng)
    identity = SRIdentity("1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.4", datetime.datetime(2025, 1, 2, 3, 4, 5))
    assert build_sr(radiograph.dataset, ints, identity) == \
        build_sr(radiograph.dataset, floats, identity)
