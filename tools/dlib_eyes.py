"""Per-frame eye reading of a video by the evaluation tool's independent dlib reader (maskeval).

Run in the eval venv (``$DMASK_MASKEVAL_PYTHON tools/dlib_eyes.py VIDEO``): prints JSON with, per
frame and per eye [right (OD), left (OS)], the dlib aperture and pupil position in pixels
(aperture = EAR x eye width; pupil_h = position along the corner axis from the eye's middle, + =
image right), so a caller can convert them to mm with its own ruler, and the reader's head pose
(yaw, pitch, roll in degrees) with the six points it is fitted to (nose tip, chin, outer eye corners,
mouth corners; pixels). Imports nothing of models/.
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


def read(path: str) -> dict[str, Any]:
    cap = cv2.VideoCapture(path)
    frames: list[dict[str, Any] | None] = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        gray = faces.to_gray(bgr)
        box = faces.detect_primary(gray)
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
        }
        for sl in (RIGHT, LEFT):
            eye = lm[sl].astype(np.float64)
            width = float(np.linalg.norm(eye[3] - eye[0]))
            h, _v = faces.pupil(gray, eye)
            row["width_px"].append(width)
            row["aperture_px"].append(faces.ear(eye) * width)
            row["pupil_h_px"].append(None if np.isnan(h) else (h - 0.5) * width)
        frames.append(row)
    return {"frames": frames}


if __name__ == "__main__":
    json.dump(read(sys.argv[1]), sys.stdout)
