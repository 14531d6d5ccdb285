"""The PNG report, checked structurally: size, chart (band, mean, point), text fields, demo mark."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from boneage.clinical.tables import GP_GIRLS
from boneage.report import REPORT_PNG, REPORT_SC, REPORT_SR, build_reports
from boneage.report import png as report_png
from boneage.report.png import render_report

from .cases import make_case


def _count(img: Image.Image, box, colour, tol: int = 0) -> int:
    a = np.asarray(img.crop(box)).astype(int)
    return int(np.sum(np.all(np.abs(a - np.array(colour)) <= tol, axis=-1)))


def test_png_report_decodes_at_the_fixed_size_with_its_text_chunks(rng):
    radiograph, output, result = make_case(rng)
    files = build_reports(radiograph, output, result)
    png = files[REPORT_PNG]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png))
    assert img.size == (report_png.WIDTH, report_png.HEIGHT) and img.mode == "RGB"
    rendered = render_report(radiograph, output, result)
    assert img.text["Description"].split("\n") == rendered.lines
    assert img.text["Software"] == "demo-0.1+abc123"


def test_png_decodes_to_exactly_the_rendered_page(rng):
    radiograph, output, result = make_case(rng)
    rendered = render_report(radiograph, output, result)
    decoded = Image.open(io.BytesIO(rendered.png_bytes()))
    decoded.load()          # checks every chunk CRC and the zlib stream
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(rendered.image))


def test_text_fields_show_bone_age_interval_ca_sds_flag_height_and_model(rng):
    radiograph, output, result = make_case(rng)
    lines = render_report(radiograph, output, result).lines
    text = "\n".join(lines)
    assert "Bone age: 10 y 11 m (131.0 months)" in lines
    assert "90 % interval: 123.0 - 139.0 months" in lines
    assert f"Chronological age: 10 y 2 m ({result.chronological_age_months:.1f} months)" in lines
    assert f"Bone age SDS: {result.sds:+.2f} (90 % interval {result.sds_interval[0]:+.2f} to {result.sds_interval[1]:+.2f})" in lines
    assert "Interpretation: within normal limits (-2 to +2 SD)" in lines
    assert "Predicted adult height: 155.2 cm (Bayley-Pinneau average, girls)" in lines
    assert "Model: demo-0.1+abc123" in lines and "ACC20241203X" in text


def test_chart_has_gp_band_mean_line_and_the_patient_point_where_ba_and_ca_put_it(rng):
    radiograph, output, result = make_case(rng)
    rendered = render_report(radiograph, output, result)
    box = rendered.chart_box
    assert _count(rendered.image, box, report_png.BAND) > 5000
    assert _count(rendered.image, box, report_png.MEAN_LINE) > 300
    assert _count(rendered.image, box, report_png.POINT) > 100
    # The point sits at (CA, BA) in the chart's years-to-pixels scale.
    px0, py0, px1, py1 = box
    x, y = rendered.point_xy
    years = report_png.CHART_MAX_YEARS
    assert abs(x - (px0 + (px1 - px0) * result.chronological_age_months / 12 / years)) <= 1
    assert abs(y - (py1 - (py1 - py0) * result.bone_age_months / 12 / years)) <= 1
    # The band is the girls' table: at CA 10 y the band spans mean +-2 SD around the point's column.
    mean, sd = GP_GIRLS.at(120.0)
    col = round(px0 + (px1 - px0) * 10 / years)
    column = np.asarray(rendered.image)[py0:py1, col]
    band_rows = np.where(np.all(column == report_png.BAND, axis=-1))[0] + py0
    top_years = (py1 - band_rows.min()) / (py1 - py0) * years
    bottom_years = (py1 - band_rows.max()) / (py1 - py0) * years
    assert abs(top_years - (mean + 2 * sd) / 12) < 0.3
    assert abs(bottom_years - (mean - 2 * sd) / 12) < 0.3


def test_unknown_sex_draws_no_reference_band(rng):
    radiograph, output, result = make_case(rng, sex=None)
    rendered = render_report(radiograph, output, result)
    assert _count(rendered.image, rendered.chart_box, report_png.BAND) == 0
    assert any(line.startswith("Bone age SDS: not given - sex unknown") for line in rendered.lines)


def test_unknown_age_draws_no_point_and_says_so(rng):
    radiograph, output, result = make_case(rng, with_age=False)
    rendered = render_report(radiograph, output, result)
    assert rendered.point_xy is None
    assert "Chronological age: unknown" in rendered.lines


def test_hand_box_is_drawn_over_the_radiograph(rng):
    radiograph, output, result = make_case(rng)
    rendered = render_report(radiograph, output, result)
    assert _count(rendered.image, rendered.image_box, report_png.HAND_BOX) > 500
    assert _count(rendered.image, rendered.image_box, report_png.REGION_BOX) > 300
    assert _count(rendered.image, rendered.chart_box, report_png.HAND_BOX) == 0


def test_demo_weights_get_a_visible_not_for_clinical_use_mark(rng):
    radiograph, output, result = make_case(rng, demo=True)
    demo = render_report(radiograph, output, result)
    assert _count(demo.image, report_png.HEADER, report_png.DEMO_RED) > 0.5 * report_png.WIDTH * 56
    assert demo.extras["Disclaimer"] == "NOT FOR CLINICAL USE - demonstration model"
    result.demo_model = False
    real = render_report(radiograph, output, result)
    assert _count(real.image, (0, 0, report_png.WIDTH, report_png.HEIGHT), report_png.DEMO_RED) == 0
    assert "Disclaimer" not in real.extras


def test_png_and_jpeg_sources_get_only_the_png(rng):
    radiograph, output, result = make_case(rng, dicom=False)
    files = build_reports(radiograph, output, result)
    assert set(files) == {REPORT_PNG}
    radiograph, output, result = make_case(rng, dicom=True)
    assert set(build_reports(radiograph, output, result)) == {REPORT_PNG, REPORT_SC, REPORT_SR}


def test_warnings_are_shown_as_notes(rng):
    radiograph, output, result = make_case(rng)
    result.warnings = ["right hand detected: the image was mirrored before assessment"]
    lines = render_report(radiograph, output, result).lines
    assert lines[-1] == "Note: right hand detected: the image was mirrored before assessment"


def test_ages_beyond_the_axes_are_pinned_inside_the_chart(rng):
    radiograph, output, result = make_case(rng)
    result.chronological_age_months, result.bone_age_months = 260.0, 250.0
    rendered = render_report(radiograph, output, result)
    px0, py0, px1, py1 = rendered.chart_box
    x, y = rendered.point_xy
    assert (x, y) == (px1, py0)


def test_a_region_that_repeats_the_hand_box_is_drawn_once_in_the_hand_colour(rng):
    radiograph, output, result = make_case(rng)
    output.regions = [output.hand_box]
    rendered = render_report(radiograph, output, result)
    assert _count(rendered.image, rendered.image_box, report_png.REGION_BOX) == 0
    assert _count(rendered.image, rendered.image_box, report_png.HAND_BOX) > 500


def test_near_mature_hand_shows_the_flag_in_the_interpretation_and_the_note(rng):
    from boneage.clinical.text import near_maturity_text

    radiograph, output, result = make_case(rng)
    result.near_skeletal_maturity = True
    result.warnings = [near_maturity_text("F")]
    lines = render_report(radiograph, output, result).lines
    assert "Interpretation: within normal limits (-2 to +2 SD); near skeletal maturity" in lines
    assert lines[-1] == f"Note: {near_maturity_text('F')}"
