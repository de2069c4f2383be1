"""Where the horizontal pupil r is lost: our iris against the eval tool's pupil reader, part by part.

The eval tool reads a pupil as the darkest quarter of the eye's pixels inside dlib's six eye points,
measured along dlib's eye corners. Our mask draws the iris at the fraction of the way between *our* eye
corners that the product measured (``eyes.iris_along_eye_seen``, the corners' slide taken out:
``eyes.undo_corner_slide``). This tool takes the two apart on each original video, per eye
(image-left eye first; positions image-left corner 0 .. image-right corner 1):

- ``channel``: our drawn fraction against the reader's (what the mask can carry at best);
- ``reader_pupil_our_corners``: the reader's pupil measured between *our* corners (if high, the corners
  agree and the difference is where each of us puts the pupil);
- ``our_iris_reader_corners``: our iris between dlib's corners;
- ``channel_open``: the channel over frames whose eye is open (our lid opening at least half its
  median), and ``shut_frames``: the share of the others;
- ``shut_shift_outward``: how far each reading moves towards the outer corner on those shut frames,
  against its open-eye median (eye widths; the iris is hidden, so what either reads there is not gaze);
- ``reader_sd_open``: how much the reader's pupil moves while the eye is open.

With ``--masked DIR`` (masks named as the videos) it also reads each mask: ``mask_r`` (what the eval
tool scores, before its imputation), ``readback_r`` (our drawn fraction against the reader on the mask)
and ``readback_residual_sd`` (what the reader adds on the mask, eye widths).

    .venv/bin/python tools/pupil_channel.py ../shared/data/videos/*.mp4 --masked MASKS --out p.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.eyes import iris_along_eye_seen, undo_corner_slide  # noqa: E402
from models.pipeline import DigitalMask  # noqa: E402
from models.template import EYE_INNER, EYE_OUTER  # noqa: E402
from models.tracking import REFINED_RING  # noqa: E402
from tools.phantoms import dlib_reading, per_video_cli, read_clip  # noqa: E402

OPEN_FRACTION = 0.5  # an eye is open where our lid opening is at least this share of its median
UPPER_MIDDLE, LOWER_MIDDLE = 12, 4  # the raw eye contour's middle points of the upper and lower lid


def along(point: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, 2) points as fractions of the way from ``first`` to ``second`` (n, 2), along that line."""
    axis = second - first
    return np.asarray(((point - first) * axis).sum(-1) / (axis * axis).sum(-1))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def reader_series(reader: list[dict[str, Any] | None], frames: np.ndarray, eye: int) -> dict[str, np.ndarray]:
    """Per track frame: the reader's pupil (px), its two eye corners (px, image-left first)."""
    n = len(frames)
    pupil, first, second = np.full((n, 2), np.nan), np.full((n, 2), np.nan), np.full((n, 2), np.nan)
    for k, f in enumerate(frames):
        row = reader[f] if f < len(reader) else None
        if row is None or row["pupil_px"][eye] is None:
            continue
        points = np.asarray(row["eye_points_px"][eye], dtype=np.float64)
        pupil[k], first[k], second[k] = row["pupil_px"][eye], points[0], points[3]
    return {"pupil": pupil, "first": first, "second": second}


def _r(x: float) -> float:
    return round(x, 3)


def video_channel(video: Path, masked: Path | None, python: Path) -> dict[str, Any]:
    frames, fps = read_clip(video)
    patient = DigitalMask(appearance_seed=1).analyse(frames, fps).patient
    if patient is None:
        return {"video": video.name, "error": "no face tracked"}
    track = np.asarray(patient.frames)
    points = patient.landmarks.points(0, len(track)).astype(np.float64)
    iris = patient.landmarks.iris(0, len(track)).astype(np.float64)
    # (n, 2): outer (0) .. inner (1) corner, per eye, as reconstruct hands it to the mask (before its median)
    drawn = undo_corner_slide(iris_along_eye_seen(points, iris))
    reader = dlib_reading(video, python)["frames"]
    mask_reader = dlib_reading(masked, python, video)["frames"] if masked is not None else None
    eyes = []
    for eye, ring in enumerate(REFINED_RING):
        # image-left corner first: the subject's right eye (0) runs outer -> inner, the left inner -> outer
        outer, inner = points[:, EYE_OUTER[eye], :2], points[:, EYE_INNER[eye], :2]
        first, second = (outer, inner) if eye == 0 else (inner, outer)
        ours = drawn[:, eye] if eye == 0 else 1.0 - drawn[:, eye]
        seen = reader_series(reader, track, eye)
        theirs = along(seen["pupil"], seen["first"], seen["second"])
        lids = points[:, ring[UPPER_MIDDLE], :2] - points[:, ring[LOWER_MIDDLE], :2]
        opening = np.linalg.norm(lids, axis=-1) / np.linalg.norm(inner - outer, axis=-1)
        shut = opening < OPEN_FRACTION * np.median(opening)
        outward = -1.0 if eye == 0 else 1.0  # the outer corner is image-left for eye 0

        def shut_shift(x: np.ndarray, shut: np.ndarray = shut, outward: float = outward) -> float:
            if not shut.any() or not np.isfinite(x[shut]).any():
                return float("nan")
            return outward * float(np.nanmean(x[shut]) - np.nanmedian(x[~shut]))

        row: dict[str, Any] = {
            "eye": "image-left (OD)" if eye == 0 else "image-right (OS)",
            "channel": _r(pearson(theirs, ours)),
            "reader_pupil_our_corners": _r(pearson(theirs, along(seen["pupil"], first, second))),
            "our_iris_reader_corners": _r(
                pearson(theirs, along(iris[:, eye, 0, :2], seen["first"], seen["second"]))
            ),
            "channel_open": _r(pearson(np.where(shut, np.nan, theirs), ours)),
            "shut_frames": _r(float(shut.mean())),
            "shut_shift_outward": {"reader": _r(shut_shift(theirs)), "ours": _r(shut_shift(ours))},
            "reader_sd_open": _r(float(np.nanstd(theirs[~shut]))),
            "ours_sd_open": _r(float(np.std(ours[~shut]))),
        }
        if mask_reader is not None:
            on_mask = reader_series(mask_reader, track, eye)
            read_back = along(on_mask["pupil"], on_mask["first"], on_mask["second"])
            ok = np.isfinite(read_back)
            residual = read_back[ok] - np.polyval(np.polyfit(ours[ok], read_back[ok], 1), ours[ok])
            row.update(
                mask_r=_r(pearson(theirs, read_back)),
                readback_r=_r(pearson(ours, read_back)),
                readback_residual_sd=_r(float(residual.std())),
            )
        eyes.append(row)
    return {"video": video.name, "frames": len(track), "eyes": eyes}


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means over the eyes (of every video) that have each correlation."""
    keys = ["channel", "reader_pupil_our_corners", "our_iris_reader_corners", "channel_open"]
    eyes = [e for r in rows for e in r.get("eyes", [])]
    out = {k: _r(float(np.nanmean([e[k] for e in eyes]))) for k in keys if eyes}
    masked = [e for e in eyes if "mask_r" in e]
    out.update({k: _r(float(np.nanmean([e[k] for e in masked]))) for k in ("mask_r", "readback_r") if masked})
    return out


def main(argv: list[str] | None = None) -> int:
    return per_video_cli(__doc__.splitlines()[0], video_channel, argv, summary=summary)


if __name__ == "__main__":
    raise SystemExit(main())
