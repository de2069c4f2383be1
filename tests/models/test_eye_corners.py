"""An eye that turns keeps its corners: the gaze is read between the eye corners, so corners that slide
with the iris take part of a squint or a nystagmus away (models/tracking.py, refine)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.perception import FacePerception
from tools import phantoms

_CLIP = "videos/livep_d11.mp4"  # the largest eyes of the shared videos (2 px per mm)
OS = 1


def _left_eyes(
    geometry: list[tuple[phantoms.EyeGeometry, phantoms.EyeGeometry] | None],
) -> list[phantoms.EyeGeometry]:
    """The left eye (OS) of every frame, as the phantoms measure it (through ``refine``)."""
    eyes = [pair[OS] for pair in geometry if pair is not None]
    assert len(eyes) == len(geometry), "a frame without the face"
    return eyes


def _iris_and_corners(eyes: list[phantoms.EyeGeometry]) -> np.ndarray:
    """Per frame, the iris centre x and the eye corners' midpoint x, in pixels (a lid curve runs from
    corner to corner)."""
    return np.asarray([(eye.iris_centre[0], eye.upper[[0, -1], 0].mean()) for eye in eyes])


def test_the_eye_corners_stay_when_the_eye_turns(
    load_video: Callable[[str], tuple[list[np.ndarray], float]],
) -> None:
    frames = load_video(_CLIP)[0][:10]
    perception = FacePerception("cpu")
    geometry = phantoms.measure(frames, perception)
    shift = phantoms.rotation_mm(15.0) * phantoms.px_per_mm(geometry)
    before = _left_eyes(geometry)
    turned = [phantoms.rotate_eyeball(f, eye, shift) for f, eye in zip(frames, before, strict=True)]
    after = _left_eyes(phantoms.measure(turned, perception))
    iris_moved, corners_moved = np.median(_iris_and_corners(after) - _iris_and_corners(before), axis=0)
    assert iris_moved > 0.8 * shift, (iris_moved, shift)
    # the eye reader's contour corners alone followed 0.29 of the iris here, the shared corners 0.19
    assert abs(corners_moved) < 0.22 * iris_moved, (corners_moved, iris_moved)
