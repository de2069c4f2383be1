"""An eye that turns keeps its corners: the gaze is read between the eye corners, so corners that slide
with the iris take part of a squint or a nystagmus away (models/tracking.py, refine)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.perception import FacePerception
from tools import phantoms

_CLIP = "videos/livep_d11.mp4"  # the largest eyes of the shared videos (2 px per mm)
OS = 1


def _iris_and_corners(geometry: list[tuple[phantoms.EyeGeometry, phantoms.EyeGeometry] | None]) -> np.ndarray:
    """Per frame, the left eye's (OS) iris centre x and its corners' midpoint x, in pixels, as the
    phantoms measure them (through ``refine``; a lid curve runs from corner to corner)."""
    eyes = [pair[OS] for pair in geometry if pair is not None]
    assert len(eyes) == len(geometry)
    return np.asarray([(eye.iris_centre[0], eye.upper[[0, -1], 0].mean()) for eye in eyes])


def test_the_eye_corners_stay_when_the_eye_turns(
    load_video: Callable[[str], tuple[list[np.ndarray], float]],
) -> None:
    frames = load_video(_CLIP)[0][:10]
    perception = FacePerception("cpu")
    geometry = phantoms.measure(frames, perception)
    shift = phantoms.rotation_mm(15.0) * phantoms.px_per_mm(geometry)
    turned = [phantoms.rotate_eyeball(f, g[OS], shift) for f, g in zip(frames, geometry, strict=True)]
    iris_moved, corners_moved = np.median(
        _iris_and_corners(phantoms.measure(turned, perception)) - _iris_and_corners(geometry), axis=0
    )
    assert iris_moved > 0.8 * shift, (iris_moved, shift)
    # the eye reader's contour corners alone followed 0.29 of the iris here, the shared corners 0.19
    assert abs(corners_moved) < 0.22 * iris_moved, (corners_moved, iris_moved)
