"""The rendered eye shows what was measured: a closed eye shows no eyeball, an open one shows it in
proportion to its aperture, and each eye follows its own numbers (a wink stays on its side). A shut eye
looks shut: its lid is smooth skin, outlined by a dark band where the lids meet, with the lashes hanging
from it, not the open eye's crease and upturned lash fringe stretched over the eye (which readers took
for an open eye)."""

from __future__ import annotations

import numpy as np
import torch

from models.avatar import MATERIAL_EYE, EyeDrive, drive_eyes, eye_plate_coords, posed_vertices, template_rig
from models.compose import Appearance, PosedFace, render_faces
from models.eyes import CLOSED_RESIDUAL, EyeState, calibrate_closure
from models.render import rasterize
from models.template import EYE_RING, LOWER_LID
from models.texture import TextureStyle, paint_skin

_SIZE = 400


def _state(aperture: tuple[float, float], iris_u: tuple[float, float] = (0.5, 0.5)) -> EyeState:
    """Eye state with the given apertures (iris diameters), lids split 40/60 about the iris centre."""
    ap = np.asarray(aperture, dtype=np.float64)
    return EyeState(
        width=np.full(2, 2.4),
        upper=0.4 * ap,
        lower=0.6 * ap,
        iris_u=np.asarray(iris_u, dtype=np.float64),
        iris_v=np.zeros(2),
        iris_diameter=np.ones(2),
    )


def _frontal(state: EyeState) -> tuple[torch.Tensor, EyeDrive]:
    """The template posed frontally, filling the test image, with its eyes driven by ``state``."""
    dt = torch.float64
    drive = drive_eyes(state)
    verts = posed_vertices(
        torch.zeros(468, 3, dtype=dt),
        drive,
        torch.eye(3, dtype=dt),
        torch.tensor(_SIZE / 20.0, dtype=dt),
        torch.tensor([_SIZE / 2, _SIZE / 2, 50.0], dtype=dt),
    )
    return verts, drive


def _visible_eyeball_pixels(state: EyeState) -> tuple[int, int]:
    """Pixels of each eye's eyeball (right, left) seen in a frontal render of the template."""
    rig = template_rig()
    verts, _ = _frontal(state)
    tris = torch.as_tensor(rig.triangles)
    frags = rasterize(verts.float(), tris, _SIZE, _SIZE)
    first = tris[frags.triangle, 0]
    eye = torch.as_tensor(rig.material)[first] == MATERIAL_EYE
    which = (first[eye] - 468) // 4
    return int((which == 0).sum()), int((which == 1).sum())


def test_a_closed_eye_shows_no_eyeball_at_all() -> None:
    right, left = _visible_eyeball_pixels(_state((0.0, 0.0)))
    assert right == 0 and left == 0


def test_the_visible_eyeball_grows_with_the_measured_aperture() -> None:
    seen = [_visible_eyeball_pixels(_state((a, a)))[0] for a in (0.2, 0.4, 0.6, 0.8)]
    assert all(b > a for a, b in zip(seen, seen[1:], strict=False)), seen
    assert seen[0] > 0


def test_a_wink_closes_only_the_winking_eye() -> None:
    right, left = _visible_eyeball_pixels(_state((0.0, 0.75)))
    assert right == 0 and left > 200


def test_a_unilateral_droop_shows_less_of_that_eye_only() -> None:
    both = _visible_eyeball_pixels(_state((0.75, 0.75)))
    droop = _visible_eyeball_pixels(_state((0.45, 0.75)))
    assert droop[0] < 0.8 * both[0]
    assert abs(droop[1] - both[1]) <= 0.02 * both[1]


def test_a_fully_closed_eye_measures_zero_after_calibration() -> None:
    raw = _state((CLOSED_RESIDUAL * 0.9, CLOSED_RESIDUAL))
    assert np.allclose(calibrate_closure(raw).aperture, 0.0)


def test_calibration_keeps_an_open_eye_and_orders_apertures() -> None:
    opened = calibrate_closure(_state((0.75, 0.75)))
    assert np.allclose(opened.aperture, 0.75)
    half = calibrate_closure(_state((0.4, 0.6)))
    assert half.aperture[0] < half.aperture[1] < 0.75
    # the lower lid keeps its measured place; the upper lid absorbs the correction
    assert np.allclose(half.lower, _state((0.4, 0.6)).lower)


def _render(state: EyeState) -> tuple[np.ndarray, torch.Tensor]:
    """A frontal render of the template (luminance 0..1) and its posed vertices."""
    verts, drive = _frontal(state)
    face = PosedFace(verts, eye_plate_coords(drive))
    rgb = render_faces([face], _SIZE, _SIZE, torch.device("cpu"), Appearance())
    return rgb.astype(np.float64).mean(axis=2) / 255.0, verts


def _eye_span(verts: torch.Tensor, eye: int) -> tuple[float, float, int]:
    """The eye's leftmost and rightmost image x and the row of its lower lid line."""
    ring = verts[list(EYE_RING[eye]), :2].numpy()
    return (
        float(ring[:, 0].min()),
        float(ring[:, 0].max()),
        int(round(float(verts[list(LOWER_LID[eye]), 1].mean()))),
    )


def _dark_pixels(lum: np.ndarray, verts: torch.Tensor, eye: int, above: bool) -> int:
    """Lash-dark pixels in a band above (or below) the eye's lower lid line, between its corners. Above,
    the band starts 0.1 eye widths up, clear of the dark band in which a shut eye's lids meet."""
    left, right, line = _eye_span(verts, eye)
    x0, x1 = int(left), int(right)
    width = x1 - x0
    if above:
        rows = slice(line - int(0.35 * width), line - int(0.1 * width))
    else:
        rows = slice(line, line + int(0.2 * width))
    return int((lum[rows, x0:x1] < 0.25).sum())


def test_a_shut_eye_shows_no_upturned_lash_fringe_above_its_lid_line() -> None:
    opened, v_open = _render(_state((0.9, 0.9)))
    shut, v_shut = _render(_state((0.0, 0.0)))
    for eye in (0, 1):
        fringe = _dark_pixels(opened, v_open, eye, above=True)  # an open eye's lashes curl up
        assert fringe > 100
        assert _dark_pixels(shut, v_shut, eye, above=True) < 0.05 * fringe


def test_a_shut_eye_shows_its_lashes_hanging_below_the_lid_line() -> None:
    opened, v_open = _render(_state((0.9, 0.9)))
    shut, v_shut = _render(_state((0.0, 0.0)))
    for eye in (0, 1):
        hanging = _dark_pixels(shut, v_shut, eye, above=False)
        assert hanging > 3 * max(_dark_pixels(opened, v_open, eye, above=False), 10)


def test_a_wink_changes_the_painting_of_the_winking_eye_only() -> None:
    both_open, verts = _render(_state((0.9, 0.9)))
    wink, _ = _render(_state((0.0, 0.9)))
    ring = verts[list(EYE_RING[1]), :2].numpy()
    half = 0.6 * float(np.ptp(ring[:, 0]))
    (x0, y0), (x1, y1) = ring.min(axis=0) - half, ring.max(axis=0) + half
    other = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
    assert np.abs(wink[other] - both_open[other]).max() <= 2 / 255  # rounding only


def test_the_closed_painting_differs_from_the_open_one_only_around_the_eyes() -> None:
    skin = paint_skin(template_rig().vertices, TextureStyle())
    outside = skin.eye_region.sum(axis=2) < 1e-4
    assert outside.mean() > 0.5
    assert np.array_equal(skin.open[outside], skin.closed[outside])
    assert np.abs(skin.open - skin.closed).max() > 0.3  # around the eyes they do differ


def _meeting_band_depth(lum: np.ndarray, verts: torch.Tensor, eye: int) -> float:
    """Depth in eye widths of the dark band through a shut eye's lid line: the rows, around the line,
    whose luminance averaged over the eye's middle half is lash-dark (averaging along the eye leaves
    the single hanging lashes grey, and a solid band dark)."""
    x0, x1, line = _eye_span(verts, eye)
    width = x1 - x0
    reach = int(0.3 * width)
    profile = lum[line - reach : line + reach, int(x0 + 0.25 * width) : int(x1 - 0.25 * width)].mean(axis=1)
    dark = profile < 0.15
    if not dark[reach - 3 : reach + 4].any():
        return 0.0
    top = bottom = reach - 3 + int(np.flatnonzero(dark[reach - 3 : reach + 4])[0])
    while top > 0 and dark[top - 1]:
        top -= 1
    while bottom + 1 < len(dark) and dark[bottom + 1]:
        bottom += 1
    return (bottom - top + 1) / width


def test_a_shut_eye_is_outlined_by_a_dark_band_where_its_lids_meet() -> None:
    shut, v_shut = _render(_state((0.0, 0.0)))
    for eye in (0, 1):
        assert _meeting_band_depth(shut, v_shut, eye) >= 0.1  # 0.06 with a lash line alone
