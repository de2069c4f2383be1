"""The metrics channel (issue #14 item 1): our exported eye metrics against the eval tool's independent
dlib reader on the *original* videos.

Per video, every frame: the exported ``aperture_mm`` of each eye against the reader's EAR of that eye
(Pearson r; the mean of both eyes is the row's aperture r), the exported OD - OS aperture difference
against the reader's asymmetry (its (EAR_R - EAR_L) / mean), and the exported blink events
(``summary.blinks``, each at its frame of minimum) against the reader's, found by the eval tool's rule
(a run of frames whose mean EAR is below 0.7 of its median, placed at the run's minimum) and matched
one to one within two frames, as the eval tool matches them. The eval tool reads a long video every
second frame; this reads every frame, so its blink counts are the whole video's.

    .venv/bin/python tools/metrics_channel.py ../shared/data/videos/*.mp4 --out channel.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.pipeline import DigitalMask  # noqa: E402
from tools.phantoms import dlib_reading, per_video_cli, read_clip  # noqa: E402
from tools.pupil_channel import pearson  # noqa: E402

BLINK_REL = 0.7  # the eval tool's blink: mean EAR below this fraction of the series' median
BLINK_TOLERANCE = 2  # frames either side within which two events are the same blink
APPEARANCE_SEED = 1  # the appearance draw does not touch the metrics; fixed so that reruns are identical


def reader_ear(reading: dict[str, Any], n: int) -> np.ndarray:
    """(n, 2) EAR per frame and eye [right (OD), left (OS)] from ``tools/dlib_eyes.py``'s reading."""
    out = np.full((n, 2), np.nan)
    for f, row in enumerate(reading["frames"][:n]):
        if row is None:
            continue
        for eye, points in enumerate(row["eye_points_px"]):
            out[f, eye] = row["aperture_px"][eye] / float(np.linalg.norm(np.subtract(points[3], points[0])))
    return out


def blink_events(ear_mean: np.ndarray) -> list[int]:
    """The eval tool's blink events: runs below BLINK_REL x the median (missing frames break a run),
    each at its minimum."""
    ok = np.isfinite(ear_mean)
    if ok.sum() < 5:
        return []
    below = ok & (ear_mean < BLINK_REL * float(np.median(ear_mean[ok])))
    events, j = [], 0
    while j < len(ear_mean):
        if not below[j]:
            j += 1
            continue
        k = j
        while k + 1 < len(ear_mean) and below[k + 1]:
            k += 1
        events.append(j + int(np.argmin(ear_mean[j : k + 1])))
        j = k + 1
    return events


def match(reference: list[int], test: list[int], tolerance: int = BLINK_TOLERANCE) -> tuple[int, int, int]:
    """Greedy one-to-one matching, as the eval tool's: (TP, FP, FN)."""
    used: set[int] = set()
    tp = 0
    for r in reference:
        near = [(abs(t - r), t) for t in test if t not in used and abs(t - r) <= tolerance]
        if near:
            used.add(min(near)[1])
            tp += 1
    return tp, len(test) - tp, len(reference) - tp


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def video_channel(video: Path, _masked: Path | None, python: Path) -> dict[str, Any]:
    frames, fps = read_clip(video)
    metrics = DigitalMask(appearance_seed=APPEARANCE_SEED).analyse(frames, fps).metrics()
    series = metrics["series"]["aperture_mm"]
    ours = np.array([[np.nan if a is None else a for a in row] for row in series], dtype=np.float64)
    theirs = reader_ear(dlib_reading(video, python), len(ours))
    asym = (theirs[:, 0] - theirs[:, 1]) / (0.5 * (theirs[:, 0] + theirs[:, 1]))
    exported = [int(b["frame"]) for b in metrics["summary"]["blinks"]]
    tp, fp, fn = match(blink_events(theirs.mean(axis=1)), exported)
    per_eye = [pearson(theirs[:, e], ours[:, e]) for e in range(2)]
    return {
        "video": video.name,
        "frames": len(ours),
        "aperture_r": round(float(np.nanmean(per_eye)), 3),
        "aperture_r_per_eye": [round(r, 3) for r in per_eye],
        "asymmetry_r": round(pearson(asym, ours[:, 0] - ours[:, 1]), 3),
        "blinks": {"tp": tp, "fp": fp, "fn": fn, "f1": round(f1(tp, fp, fn), 3)},
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over videos; blink events pooled and per-video F1 averaged."""
    done = [r for r in rows if "aperture_r" in r]
    tp, fp, fn = (sum(r["blinks"][k] for r in done) for k in ("tp", "fp", "fn"))
    return {
        "aperture_r": round(float(np.nanmean([r["aperture_r"] for r in done])), 3),
        "asymmetry_r": round(float(np.nanmean([r["asymmetry_r"] for r in done])), 3),
        "blink_f1_pooled": round(f1(tp, fp, fn), 3),
        "blink_f1_mean": round(float(np.nanmean([r["blinks"]["f1"] for r in done])), 3),
        "blinks": {"tp": tp, "fp": fp, "fn": fn},
    }


def main(argv: list[str] | None = None) -> int:
    return per_video_cli(__doc__.splitlines()[0], video_channel, argv, summary=summary)


if __name__ == "__main__":
    raise SystemExit(main())
