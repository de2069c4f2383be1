"""Result types of face perception, shared by the networks and by everything built on them.

Conventions (all arrays float32, numpy):
- Pixel coordinates of the *input frame* (x right, y down); z of mesh points is relative depth in the
  same pixel scale as x (smaller = closer to the camera), as the reference face-mesh pipeline gives it.
- Eye index 0 is the subject's RIGHT eye (OD, on the image's left in an upright frontal view),
  index 1 the subject's LEFT eye (OS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roi:
    """A rotated square region of a frame: centre, side length (pixels) and rotation (radians, CCW
    positive as in the reference pipeline: the angle that brings the eye line horizontal)."""

    cx: float
    cy: float
    size: float
    rotation: float


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in pixels
    score: float  # 0..1
    keypoints: np.ndarray  # (6, 2) right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion


@dataclass(frozen=True)
class FaceLandmarks:
    detection: Detection | None  # the detection that seeded the region (None when tracked from a mesh)
    roi: Roi  # the region the mesh network saw
    presence: float  # face-presence score of the mesh network, 0..1
    mesh: np.ndarray  # (468, 3)
    eye_contours: np.ndarray  # (2, 71, 3) eye contour + brow points per eye (attention heads or iris net)
    iris: np.ndarray  # (2, 5, 3) iris centre first, then 4 boundary points, per eye
