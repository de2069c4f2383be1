"""Per-frame eye reading of a video by the evaluation tool's independent dlib reader (maskeval).

Run in the eval venv (``$DMASK_MASKEVAL_PYTHON tools/dlib_eyes.py VIDEO [ORIGINAL]``; with the
original of a masked VIDEO, the face read is the one where the original's is, as the eval tool reads
masks): prints JSON with, per
frame and per eye [right (OD), left (OS)], the dlib aperture and pupil position in pixels
(aperture = EAR x eye width; pupil_h = position along the corner axis from the eye's middle, + =
image right), so a caller can convert them to mm with its own ruler, and the reader's head pose
(yaw, pitch, roll in degrees) with the six points it is fitted to (nose tip, chin, outer eye corners,
mouth corners; pixels). Also each eye's six dlib points and the reader's pupil centre, in image pixels,
so that a caller can measure that pupil against other eye corners (``tools/pupil_channel.py``).
Imports nothing of models/.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import cv2
import numpy as np
from maskeval import faces

RIGHT = slice(36, 42)
LEFT = slice(42, 48)
POSE_POINTS = [30, 8, 36, 45, 48, 54]  # the points maskeval.faces.head_pose fits its generic face to


def _pupil_px(eye: np.ndarray, h: float, v: float) -> list[float]:
    """The reader's pupil back in image pixels: ``faces.pupil`` returns h along the corner axis from
    the first corner and v across it from the corners' midpoint, both in eye widths (the midpoint lies
    on the axis, so v needs no offset along it)."""
    a, b = eye[0], eye[3]
    width = float(np.linalg.norm(b - a))
    u = (b - a) / width
    n = np.array([-u[1], u[0]])
    return (a + width * (h * u + v * n)).tolist()


def _face_near(gray: np.ndarray, coarse: tuple[float, float, float, float] | None) -> Any:
    """The face found where ``coarse`` (the original's largest face) is, as the eval tool finds a
    masked face: so that a mask's other drawn faces are never read in the patient's place."""
    if coarse is None:
        return None
    box = faces.roi_detect(gray, coarse)
    if box is not None:
        return box
    near = [(faces.iou(b, coarse), b) for b, _ in faces.detect_all(gray)]
    near = [(o, b) for o, b in near if o >= faces.MATCH_IOU]
    return max(near)[1] if near else None


def read(path: str, reference: str | None = None) -> dict[str, Any]:
    """Every frame of ``path``; with ``reference`` (the original of a mask), the face at the place of
    the original's largest face in the same frame, else the largest face."""
    cap = cv2.VideoCapture(path)
    ref = cv2.VideoCapture(reference) if reference else None
    frames: list[dict[str, Any] | None] = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        gray = faces.to_gray(bgr)
        if ref is None:
            # as the eval tool boxes an original: the largest face, found again in a window around it
            coarse = faces.detect_primary(gray)
            box = None if coarse is None else faces.roi_detect(gray, coarse) or coarse
        else:
            ok_ref, ref_bgr = ref.read()
            box = _face_near(gray, faces.detect_primary(faces.to_gray(ref_bgr)) if ok_ref else None)
        if box is None:
            frames.append(None)
            continue
        lm = faces.landmarks(gray, box)
        row = {
            "aperture_px": [],
            "pupil_h_px": [],
            "width_px": [],
            "pose_deg": list(faces.head_pose(lm, (gray.shape[1], gray.shape[0]))),
            "pose_points_px": lm[POSE_POINTS].astype(float).tolist(),
            "eye_points_px": [],
            "pupil_px": [],
        }
        for sl in (RIGHT, LEFT):
            eye = lm[sl].astype(np.float64)
            width = float(np.linalg.norm(eye[3] - eye[0]))
            h, v = faces.pupil(gray, eye)
            row["width_px"].append(width)
            row["eye_points_px"].append(eye.tolist())
            row["pupil_px"].append(None if np.isnan(h) else _pupil_px(eye, h, v))
            row["aperture_px"].append(faces.ear(eye) * width)
            row["pupil_h_px"].append(None if np.isnan(h) else (h - 0.5) * width)
        frames.append(row)
    return {"frames": frames}


if __name__ == "__main__":
    json.dump(read(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None), sys.stdout)
