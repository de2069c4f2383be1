"""Where the eval tool's head-yaw error comes from: our pose against its reader, per video.

The eval tool reads head pose by fitting a generic 3D face to six dlib points (nose tip, chin, outer
eye corners, mouth corners). This tool puts three readings of each original video side by side:
that reader's (dlib), the same six-point generic fit applied to *our* landmarks of the same points
(a second reader of the same definition), and our rendered pose (the rigid fit of the template to
the mesh: ``reconstruct``). If the second reader agrees with dlib and ours does not, the difference
is in what six points say about that face, not in either landmark reader. With ``--masked DIR`` it
also reads the masks of the same names (e.g. from ``tools/seeded_masker.py``) and reports, for the
original and the mask, where the six points sit relative to the eye corners (units of the corner
distance), which is what the reader's yaw is read from.

    .venv/bin/python tools/pose_offsets.py ../shared/data/videos/*.mp4 --out pose.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.pipeline import DigitalMask  # noqa: E402
from tools.phantoms import dlib_reading, per_video_cli, read_clip  # noqa: E402

# maskeval.faces' generic face (nose tip, chin, outer eye corners image left / right, mouth corners
# image left / right), and the MediaPipe mesh points at the same places
GENERIC_FACE = np.array(
    [[0, 0, 0], [0, 330, 65], [-225, -170, 135], [225, -170, 135], [-150, 150, 125], [150, 150, 125]],
    dtype=np.float64,
)
MESH_POINTS = [1, 152, 33, 263, 61, 291]
POINT_NAMES = ["nose", "chin", "eye_left", "eye_right", "mouth_left", "mouth_right"]


def six_point_yaw(points: np.ndarray, width: int, height: int) -> float:
    """Yaw (degrees) as maskeval.faces.head_pose reads it from six image points."""
    cam = np.array([[width, 0, width / 2.0], [0, width, height / 2.0], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(
        GENERIC_FACE, points.astype(np.float64), cam, np.zeros(4), flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok or float(tvec.ravel()[2]) <= 0:
        return float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    return float(cv2.RQDecomp3x3(rot)[0][1])


def relative_points(points: np.ndarray) -> np.ndarray:
    """(N, 6, 2) points relative to the midpoint of the outer eye corners, in corner distances."""
    mid = 0.5 * (points[:, 2] + points[:, 3])
    dist = np.linalg.norm(points[:, 3] - points[:, 2], axis=1)
    return (points - mid[:, None]) / dist[:, None, None]


def mean_six_points(rows: list[list[list[float]]]) -> dict[str, list[float]]:
    """Each of the six points' mean place over frames, relative to the outer eye corners."""
    rel = relative_points(np.array(rows, dtype=np.float64))
    return {name: np.round(rel[:, k].mean(0), 3).tolist() for k, name in enumerate(POINT_NAMES)}


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(np.nanmean(values)), 2), "sd": round(float(np.nanstd(values)), 2)}


def video_offsets(video: Path, masked: Path | None, python: Path) -> dict[str, Any]:
    frames, fps = read_clip(video)
    height, width = frames[0].shape[:2]
    seq = DigitalMask(appearance_seed=1).analyse(frames, fps)
    patient = seq.patient
    if patient is None:
        return {"video": video.name, "error": "no face tracked"}
    track_pos = {int(f): k for k, f in enumerate(patient.frames)}  # frame -> position in the track
    mesh = patient.landmarks.points(0, len(patient.frames))[:, MESH_POINTS, :2]
    reader = dlib_reading(video, python)["frames"]
    mask_reader = dlib_reading(masked, python, video)["frames"] if masked is not None else None
    keep = [
        i
        for i, row in enumerate(reader)
        if row is not None
        and i in track_pos
        and not np.isnan(row["pose_deg"][0])
        and (mask_reader is None or (i < len(mask_reader) and mask_reader[i] is not None))
    ]
    at = [track_pos[i] for i in keep]
    dlib_yaw = np.array([reader[i]["pose_deg"][0] for i in keep])
    our_yaw = patient.angles[at, 0].astype(np.float64)
    mesh_yaw = np.array([six_point_yaw(mesh[k], width, height) for k in at])
    slope = np.polyfit(our_yaw, dlib_yaw, 1)[0] if len(keep) > 2 and np.ptp(our_yaw) > 0 else float("nan")
    out: dict[str, Any] = {
        "video": video.name,
        "frames": len(keep),
        "yaw_dlib": _summary(dlib_yaw),
        "yaw_six_point_on_our_landmarks": _summary(mesh_yaw),
        "yaw_ours_rendered": _summary(our_yaw),
        "mae_ours_vs_dlib": round(float(np.nanmean(np.abs(our_yaw - dlib_yaw))), 2),
        "mae_six_point_ours_vs_dlib": round(float(np.nanmean(np.abs(mesh_yaw - dlib_yaw))), 2),
        "slope_dlib_on_ours": round(float(slope), 2),
    }
    out["six_points_original"] = mean_six_points([reader[i]["pose_points_px"] for i in keep])
    if mask_reader is not None:
        mask_yaw = np.array([mask_reader[i]["pose_deg"][0] for i in keep])
        out["yaw_dlib_on_mask"] = _summary(mask_yaw)
        out["mae_mask_vs_original"] = round(float(np.nanmean(np.abs(mask_yaw - dlib_yaw))), 2)
        out["six_points_mask"] = mean_six_points([mask_reader[i]["pose_points_px"] for i in keep])
    return out


def main(argv: list[str] | None = None) -> int:
    return per_video_cli(__doc__.splitlines()[0], video_offsets, argv)


if __name__ == "__main__":
    raise SystemExit(main())
