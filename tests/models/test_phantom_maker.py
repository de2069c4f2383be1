"""The squint and nystagmus phantoms turn the eyeball under lids that stay put: the iris and its limbal
ring move by exactly the shift asked for, and everything outside the lid opening stays as it was
(tools/phantoms.py, rotate_eyeball). The phantom table's verdicts rest on this instrument."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.perception import FacePerception
from tools import phantoms

_CLIP = "videos/livep_d11.mp4"  # the largest eyes of the shared videos (2 px per mm)
_SHIFT = 4  # px; whole pixels, so that the moved iris is an exact copy


@pytest.fixture(scope="module")
def eye(
    load_video: Callable[[str], tuple[list[np.ndarray], float]],
) -> tuple[np.ndarray, phantoms.EyeGeometry]:
    """The first frame of the clip and its subject's left eye (OS), as the phantoms measure it."""
    frame = load_video(_CLIP)[0][0]
    geometry = phantoms.measure([frame], FacePerception("cpu"))[0]
    assert geometry is not None
    return frame, geometry[1]


def test_nothing_outside_the_lid_opening_moves(eye: tuple[np.ndarray, phantoms.EyeGeometry]) -> None:
    frame, geo = eye
    turned = phantoms.rotate_eyeball(frame, geo, _SHIFT)
    outside = ~phantoms.lid_opening(frame.shape, geo)
    assert np.array_equal(turned[outside], frame[outside])
    assert not np.array_equal(turned, frame)


def test_the_iris_moves_by_the_shift_asked_for(eye: tuple[np.ndarray, phantoms.EyeGeometry]) -> None:
    frame, geo = eye
    turned = phantoms.rotate_eyeball(frame, geo, _SHIFT)
    opening = phantoms.lid_opening(frame.shape, geo)
    cx, cy, r = int(round(geo.iris_centre[0])), int(round(geo.iris_centre[1])), int(geo.iris_radius)
    # the iris's own columns, on rows and at places that lie in the opening before and after the move
    ys, xs = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
    keep = opening[ys, xs] & opening[ys, xs + _SHIFT]
    assert keep.sum() > 100
    assert np.array_equal(turned[ys[keep], xs[keep] + _SHIFT], frame[ys[keep], xs[keep]])


def test_an_iris_turned_past_the_corner_is_refused(eye: tuple[np.ndarray, phantoms.EyeGeometry]) -> None:
    frame, geo = eye
    width = float(geo.upper[-1, 0] - geo.upper[0, 0])
    with pytest.raises(ValueError, match="too narrow"):
        phantoms.rotate_eyeball(frame, geo, width)
