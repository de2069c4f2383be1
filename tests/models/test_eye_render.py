"""The rendered eye shows what was measured: a closed eye shows no eyeball, an open one shows it in
proportion to its aperture, and each eye follows its own numbers (a wink stays on its side)."""

from __future__ import annotations

import numpy as np
import torch

from models.avatar import MATERIAL_EYE, drive_eyes, posed_vertices, template_rig
from models.eyes import CLOSED_RESIDUAL, EyeState, calibrate_closure
from models.render import rasterize

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


def _visible_eyeball_pixels(state: EyeState) -> tuple[int, int]:
    """Pixels of each eye's eyeball (right, left) seen in a frontal render of the template."""
    rig = template_rig()
    dt = torch.float64
    scale = torch.tensor(_SIZE / 20.0, dtype=dt)
    verts = posed_vertices(
        torch.zeros(468, 3, dtype=dt),
        drive_eyes(state),
        torch.eye(3, dtype=dt),
        scale,
        torch.tensor([_SIZE / 2, _SIZE / 2, 50.0], dtype=dt),
    )
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
