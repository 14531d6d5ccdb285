"""The PNG report: the radiograph with the detected hand and regions, the numbers, and a GP chart.

Drawn with Pillow only (no matplotlib in the Lambda image). The layout is fixed so tests can check
it structurally through ``RenderedReport`` (where the chart and the radiograph are) and through the
PNG text chunks, which carry the same lines as the image. Nothing that identifies the patient is
drawn or embedded: the PNG goes to the results bucket and is linked from notifications.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from boneage.clinical.interpretation import reference_table
from boneage.clinical.text import (
    DEMO_DISCLAIMER,
    adult_height_text,
    flag_text,
    interval_text,
    sds_text,
    sex_text,
    signed,
    years_months,
)
from boneage.imaging.types import Radiograph
from boneage.model.types import Box, ModelOutput
from boneage.result import AssessmentResult

WIDTH, HEIGHT = 1200, 800
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GRID = (225, 225, 225)
BAND = (198, 219, 239)        # +-2 SD band
MEAN_LINE = (33, 102, 172)    # GP mean
POINT = (214, 39, 40)         # the patient
HAND_BOX = (0, 200, 0)
REGION_BOX = (255, 165, 0)
DEMO_RED = (200, 0, 0)

HEADER = (0, 0, WIDTH, 56)
IMAGE_AREA = (20, 76, 540, 780)
TEXT_AREA = (570, 76, 1180, 380)
CHART_AREA = (570, 392, 1180, 780)
CHART_MAX_YEARS = 19.0


@dataclass
class RenderedReport:
    image: Image.Image
    lines: list[str]                                   # the text drawn in the text panel, in order
    image_box: tuple[int, int, int, int]               # where the radiograph was pasted
    chart_box: tuple[int, int, int, int]               # plot area of the chart (axes inside)
    point_xy: tuple[int, int] | None = None            # the patient's point on the chart
    extras: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def rgb(self) -> np.ndarray:
        """The page as a (HEIGHT, WIDTH, 3) uint8 array, shared by the PNG and the DICOM SC."""
        return np.asarray(self.image)

    def png_bytes(self) -> bytes:
        info = PngInfo()
        info.add_text("Title", "Bone age assessment report")
        info.add_text("Description", "\n".join(self.lines))
        for key, value in self.extras.items():
            info.add_text(key, value)
        return encode_png(self.rgb, [(cid, data) for cid, data, *_ in info.chunks])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(rgb: np.ndarray, text_chunks: list[tuple[bytes, bytes]]) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` with ``text_chunks`` (as PngInfo builds them) before the image data.

    Pillow's encoder picks a filter per row by trying all five, which costs more than the deflate
    itself on this page. The Up filter for every row, done in one numpy subtraction, turns the flat
    page into runs of zeros; with deflate level 1 the file is within ~10 % of Pillow's best and the
    encode is about three times faster.
    """
    h, w, _ = rgb.shape
    flat = rgb.reshape(h, w * 3)
    rows = np.empty((h, 1 + w * 3), dtype=np.uint8)
    rows[:, 0] = 2                                   # filter type Up (row 0: Up from zeros = None)
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])   # uint8 wraps modulo 256, as PNG requires
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header)]
    parts += [_chunk(kind, data) for kind, data in text_chunks]
    parts += [_chunk(b"IDAT", zlib.compress(rows, 1)), _chunk(b"IEND", b"")]
    return b"".join(parts)


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font: no system font needed in the Lambda image or on CI. Loading it
    # decodes the embedded font each time, so each size is loaded once.
    return ImageFont.load_default(size=size)


def report_lines(result: AssessmentResult) -> list[str]:
    """The text fields of the report, one per line; the same wording as the notification."""
    ba_minus_ca = (
        result.bone_age_months - result.chronological_age_months
        if result.bone_age_months is not None and result.chronological_age_months is not None
        else None
    )
    lines = [
        f"Bone age: {years_months(result.bone_age_months)}",
        f"90 % interval: {interval_text(result.bone_age_interval_months)}",
        f"Chronological age: {years_months(result.chronological_age_months)}",
        f"BA - CA: {signed(ba_minus_ca, 1, ' months')}",
        f"Sex: {sex_text(result.sex, result.sex_source, result.predicted_sex)}",
        f"Bone age SDS: {sds_text(result.sds, result.sds_interval, result.sds_reason)}",
        f"Interpretation: {flag_text(result.interpretation, result.interpretation_reason, result.near_skeletal_maturity)}",
        f"Predicted adult height: {adult_height_text(result.predicted_adult_height_cm, result.adult_height_table, result.adult_height_reason)}",
        f"Study reference: {result.study_reference or result.accession_number or 'n/a'}",
        f"Model: {result.model_version or 'unknown'}",
        "Reference: Greulich & Pyle 1959, Brush Foundation means and SDs",
    ]
    lines += [f"Note: {w}" for w in result.warnings]
    return lines


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    if draw.textlength(text, font=font) <= width:
        return [text]       # most lines fit; measuring word by word is the costly part
    words, out, current = text.split(" "), [], ""
    for word in words:
        trial = f"{current} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not current:
            current = trial
        else:
            out.append(current)
            current = "    " + word
    out.append(current)
    return out


def _draw_radiograph(canvas: Image.Image, radiograph: Radiograph, output: ModelOutput) -> tuple[int, int, int, int]:
    pixels = np.clip(np.asarray(radiograph.pixels, dtype=np.float32), 0.0, 1.0)   # a copy; +-inf clipped
    pixels[np.isnan(pixels)] = 0.0
    img = Image.fromarray((pixels * 255.0 + 0.5).astype(np.uint8), mode="L")
    x0, y0, x1, y1 = IMAGE_AREA
    scale = min((x1 - x0) / img.width, (y1 - y0) / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    # Resampled as one grey channel (pasting into the RGB page copies it to all three), with a
    # box reduction first when shrinking by 3x or more: a full Lanczos over a 2-3k px radiograph
    # was most of the render time, and the thumbnail looks the same.
    img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    ox, oy = x0 + (x1 - x0 - size[0]) // 2, y0 + (y1 - y0 - size[1]) // 2
    canvas.paste(img, (ox, oy))
    draw = ImageDraw.Draw(canvas)
    font = _font(13)

    def rect(box: Box, colour, width: int, label: str | None, label_above: bool = False) -> None:
        # Boxes are in the pixel frame of the image the model was given (radiograph.pixels).
        bx0, by0 = ox + box.x0 * scale, oy + box.y0 * scale
        bx1, by1 = ox + box.x1 * scale, oy + box.y1 * scale
        bx0, bx1 = sorted((min(max(bx0, ox), ox + size[0]), min(max(bx1, ox), ox + size[0])))
        by0, by1 = sorted((min(max(by0, oy), oy + size[1]), min(max(by1, oy), oy + size[1])))
        draw.rectangle((bx0, by0, bx1, by1), outline=colour, width=width)
        if label:
            ty = by0 - 16 if label_above and by0 - 16 >= y0 else by0 + 2
            draw.text((bx0 + 3, ty), label, fill=colour, font=font)

    hand = output.hand_box
    for region in output.regions:
        # The detector's region list may repeat the hand box itself; draw each box once.
        if hand is not None and (region.x0, region.y0, region.x1, region.y1) == (hand.x0, hand.y0, hand.x1, hand.y1):
            continue
        rect(region, REGION_BOX, 2, region.label)
    if hand is not None:
        rect(hand, HAND_BOX, 3, f"{hand.label.replace('_', ' ')} {hand.score:.2f}", label_above=True)
    return ox, oy, ox + size[0], oy + size[1]


def _chart_geometry() -> tuple[tuple[int, int, int, int], callable, callable]:
    ax0, ay0, ax1, ay1 = CHART_AREA
    px0, py0, px1, py1 = ax0 + 52, ay0 + 44, ax1 - 14, ay1 - 40   # plot area inside the axes

    # Ages beyond the axes (an adult, a bad header) are pinned to the edge, never drawn outside.
    def X(years: float) -> float:
        return px0 + (px1 - px0) * min(max(years, 0.0), CHART_MAX_YEARS) / CHART_MAX_YEARS

    def Y(years: float) -> float:
        return py1 - (py1 - py0) * min(max(years, 0.0), CHART_MAX_YEARS) / CHART_MAX_YEARS

    return (px0, py0, px1, py1), X, Y


def _draw_chart_frame(canvas: Image.Image, sex: str | None) -> None:
    """What the chart shows for every patient of this sex: axes, grid, labels, the GP band and mean."""
    draw = ImageDraw.Draw(canvas)
    small, title_font = _font(13), _font(15)
    ax0, ay0, _, _ = CHART_AREA
    (px0, py0, px1, py1), X, Y = _chart_geometry()
    table = reference_table(sex)
    who = {"M": "boys", "F": "girls"}.get(sex or "", "sex unknown: no reference")
    draw.text((ax0, ay0), f"Bone age vs chronological age - Greulich & Pyle mean +-2 SD ({who})",
              fill=INK, font=title_font)
    for t in range(0, int(CHART_MAX_YEARS) + 1, 2):
        draw.line((X(t), py0, X(t), py1), fill=GRID)
        draw.line((px0, Y(t), px1, Y(t)), fill=GRID)
        draw.text((X(t) - 6, py1 + 4), str(t), fill=INK, font=small)
        draw.text((px0 - 22, Y(t) - 7), str(t), fill=INK, font=small)
    draw.text(((px0 + px1) // 2 - 80, py1 + 20), "chronological age (years)", fill=INK, font=small)
    draw.text((ax0, py0 - 18), "bone age (years)", fill=INK, font=small)

    if table is not None:
        ages = table.age_months / 12.0
        upper = (table.mean_months + 2 * table.sd_months) / 12.0
        lower = (table.mean_months - 2 * table.sd_months) / 12.0
        band = [(X(a), Y(u)) for a, u in zip(ages, upper)] + [(X(a), Y(lo)) for a, lo in zip(ages[::-1], lower[::-1])]
        draw.polygon(band, fill=BAND)
        draw.line([(X(a), Y(m / 12.0)) for a, m in zip(ages, table.mean_months)], fill=MEAN_LINE, width=3)
    draw.rectangle((px0, py0, px1, py1), outline=INK, width=1)


def _draw_chart_point(canvas: Image.Image, result: AssessmentResult) -> tuple[tuple[int, int, int, int], tuple[int, int] | None]:
    draw = ImageDraw.Draw(canvas)
    (px0, py0, px1, py1), X, Y = _chart_geometry()
    point = None
    ba, ca = result.bone_age_months, result.chronological_age_months
    if ba is not None and ca is not None:
        x, y = X(ca / 12.0), Y(ba / 12.0)
        if result.bone_age_interval_months:
            lo, hi = result.bone_age_interval_months
            draw.line((x, Y(lo / 12.0), x, Y(hi / 12.0)), fill=POINT, width=3)
            draw.line((x - 6, Y(lo / 12.0), x + 6, Y(lo / 12.0)), fill=POINT, width=3)
            draw.line((x - 6, Y(hi / 12.0), x + 6, Y(hi / 12.0)), fill=POINT, width=3)
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=POINT, outline=INK)
        point = (round(x), round(y))
    else:
        draw.text((px0 + 12, py0 + 10), "no point: chronological age unknown", fill=POINT, font=_font(13))
    return (px0, py0, px1, py1), point


@functools.lru_cache(maxsize=16)
def _page_layout(sex: str | None, demo: bool) -> Image.Image:
    """The parts of the page that depend only on sex and the demo flag, drawn once and copied per report.

    The panels do not overlap, so drawing these first and the patient's parts on a copy gives the
    same pixels as drawing everything in one pass.
    """
    canvas = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title = _font(24)
    if demo:
        draw.rectangle(HEADER, fill=DEMO_RED)
        draw.text((20, 14), f"Bone age report - {DEMO_DISCLAIMER}", fill=(255, 255, 255), font=title)
    else:
        draw.text((20, 14), "Bone age report", fill=INK, font=title)
    _draw_chart_frame(canvas, sex)
    return canvas


def render_report(radiograph: Radiograph, output: ModelOutput, result: AssessmentResult) -> RenderedReport:
    canvas = _page_layout(result.sex, bool(result.demo_model)).copy()
    draw = ImageDraw.Draw(canvas)
    image_box = _draw_radiograph(canvas, radiograph, output)
    lines = report_lines(result)
    body = _font(17)
    x0, y, x1, y_end = TEXT_AREA
    for line in lines:
        for piece in _wrap(draw, line, body, x1 - x0):
            if y + 22 > y_end:
                break
            draw.text((x0, y), piece, fill=INK, font=body)
            y += 22
    chart_box, point = _draw_chart_point(canvas, result)
    if result.demo_model:
        # A second mark at the bottom so a crop of the header still carries the warning. Drawn last,
        # over anything a box label near the bottom of the radiograph may have put there.
        draw.text((IMAGE_AREA[0], HEIGHT - 18), DEMO_DISCLAIMER, fill=DEMO_RED, font=_font(14))
    extras = {"Software": result.model_version or "unknown"}
    if result.demo_model:
        extras["Disclaimer"] = DEMO_DISCLAIMER
    return RenderedReport(canvas, lines, image_box, chart_box, point, extras)
