"""Clinical eye metrics of the patient's face, per frame and per video (schema ``dmask.eye-metrics/1``).

Millimetres use the iris diameter (11.7 mm) as the ruler; rotations assume a 12 mm eyeball radius.
Eye order everywhere: right eye (OD) first, then left (OS). Missing frames are ``null``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from models.eyes import rotation_deg, to_mm
from models.reconstruct import TrackReconstruction

SCHEMA = "dmask.eye-metrics/1"
# A blink: the mean aperture of both eyes below this fraction of the video's typical (median) aperture.
# 60% counts incomplete blinks too (clinically relevant in dry eye); on the shared videos it gives the
# best agreement with an independent reader's blinks on the originals (F1 0.72 vs 0.72 at 50% of the
# 75th percentile and 0.71 at 70%; see models/README.md, "the metrics channel").
BLINK_CLOSURE = 0.6
# An eye whose aperture is below this fraction of its median shows no iris to measure: at 0.2 (about
# 1.8 mm of a typical 8.8 mm opening) the slit is narrower than a pupil. What the eye readers return
# there is not gaze: on the shared videos' shut frames our iris position moved by up to 0.13 eye widths,
# nasally on eight of ten videos, which a clinician reading gaze across a blink would take for
# convergence (models/README.md, "Measured (2026-12-07, fourteenth session)"). Those offsets are null.
IRIS_HIDDEN_FRACTION = 0.2
MIN_OSCILLATION_HZ, MAX_OSCILLATION_HZ = 1.0, 12.0
MIN_PERIODICITY = 0.4  # see dominant_oscillation


def _nan_series(n: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    return np.full((n, *shape), np.nan)


def iris_hidden(aperture_mm: np.ndarray) -> np.ndarray:
    """(n, 2) per-eye apertures -> (n, 2) bool: where the lids hide the iris (below
    IRIS_HIDDEN_FRACTION of that eye's median over the measured frames). Unmeasured frames are False."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an eye never measured has no median (NaN)
        open_level = np.nanmedian(aperture_mm, axis=0)
    return np.asarray(aperture_mm < IRIS_HIDDEN_FRACTION * open_level)  # NaN compares False


def frame_series(rec: TrackReconstruction | None, n_frames: int) -> dict[str, np.ndarray]:
    """Per-frame series over the whole video (NaN where the patient's face was not measured)."""
    out = {
        "aperture_mm": _nan_series(n_frames, (2,)),
        "mrd1_mm": _nan_series(n_frames, (2,)),
        "mrd2_mm": _nan_series(n_frames, (2,)),
        "fissure_width_mm": _nan_series(n_frames, (2,)),
        "iris_offset_h_mm": _nan_series(n_frames, (2,)),
        "iris_offset_v_mm": _nan_series(n_frames, (2,)),
        "head_pose_deg": _nan_series(n_frames, (3,)),
    }
    if rec is None:
        return out
    e = rec.eyes
    idx = rec.frames
    out["aperture_mm"][idx] = to_mm(e.upper + e.lower)
    out["mrd1_mm"][idx] = to_mm(e.upper)
    out["mrd2_mm"][idx] = to_mm(e.lower)
    out["fissure_width_mm"][idx] = to_mm(e.width)
    # horizontal offset from the middle of the eye opening, positive towards the subject's left
    # (temporal for OS, nasal for OD) so both eyes share one direction for conjugate gaze
    sign = np.array([1.0, -1.0])
    out["iris_offset_h_mm"][idx] = to_mm((e.iris_u - 0.5) * e.width) * sign
    out["iris_offset_v_mm"][idx] = to_mm(e.iris_v)
    out["head_pose_deg"][idx] = rec.angles
    out["head_pose_deg"][idx[rec.carried]] = np.nan
    for key in (
        "aperture_mm",
        "mrd1_mm",
        "mrd2_mm",
        "fissure_width_mm",
        "iris_offset_h_mm",
        "iris_offset_v_mm",
    ):
        out[key][idx[rec.carried]] = np.nan
    hidden = iris_hidden(out["aperture_mm"])
    out["iris_offset_h_mm"][hidden] = np.nan
    out["iris_offset_v_mm"][hidden] = np.nan
    return out


def detect_blinks(aperture: np.ndarray, fps: float) -> list[dict[str, float]]:
    """Blinks as runs of frames whose mean aperture of both eyes drops below 60% of its median."""
    with warnings.catch_warnings():  # frames where neither eye was measured are NaN, as they should be
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(aperture, axis=1) if aperture.size else aperture
    valid = ~np.isnan(mean)
    if valid.sum() < 3:
        return []
    open_level = float(np.nanmedian(mean))
    closed = np.zeros(len(mean), dtype=bool)
    closed[valid] = mean[valid] < BLINK_CLOSURE * open_level
    blinks = []
    start = None
    for i, c in enumerate([*closed, False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            seg = mean[start:i]
            # the middle of the frames at the minimum: a shut eye reads 0 mm for several frames, and
            # the first of them is not the blink's deepest moment
            at_min = np.flatnonzero(seg <= np.nanmin(seg))
            low = start + int(at_min[len(at_min) // 2])
            blinks.append(
                {
                    "start_s": start / fps,
                    "end_s": i / fps,
                    "frame": low,
                    "duration_ms": 1000.0 * (i - start) / fps,
                    "min_aperture_mm": float(np.nanmin(seg)),
                }
            )
            start = None
    return blinks


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    padded = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)


def _autocorrelation(x: np.ndarray, lag: int) -> float:
    lag = max(1, lag)
    if lag >= len(x) - 2:
        return 0.0
    a, b = x[:-lag], x[lag:]
    denom = float(np.sqrt(((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum()))
    return float(((a - a.mean()) * (b - b.mean())).sum() / denom) if denom > 0 else 0.0


def periodicity(x: np.ndarray, fps: float, frequency_hz: float) -> float:
    """How much ``x`` repeats at this frequency: half the difference between its autocorrelation one
    period apart and half a period apart (1 for a pure oscillation, about 0 for movements that do not
    repeat)."""
    period = fps / frequency_hz
    return 0.5 * (_autocorrelation(x, round(period)) - _autocorrelation(x, round(period / 2)))


def dominant_oscillation(signal: np.ndarray, fps: float) -> dict[str, float] | None:
    """The strongest periodic component of horizontal iris position between 1 and 12 Hz, when it
    stands well above the spectrum's floor and repeats through the recording (nystagmus); None
    otherwise.

    The gaze's own movements are removed first by subtracting a one-second running median: a median
    keeps a saccade's step and the fixations around it but averages a fast oscillation away. A peak of
    the spectrum alone is not an oscillation: a few glances around the room put one in the 1-12 Hz band
    of almost every video (8 of the 10 shared videos of people without nystagmus reported one), so the
    strongest component must also repeat (``periodicity`` >= MIN_PERIODICITY: those glances scored -0.2
    to 0.24, the nystagmus phantoms 0.76-0.79 and a nystagmus interrupted by a saccade every 0.8 s 0.49;
    models/README.md, "Nystagmus: a spectral peak is not an oscillation").

    Missing frames (a blink hides the iris; the face is lost) are bridged by straight lines, not
    dropped: dropping them joins samples a gap apart as if they were neighbours, and every blink then
    shifts the oscillation's phase (a 3 Hz nystagmus with eight 4-frame gaps read 3.57 Hz)."""
    measured = np.flatnonzero(~np.isnan(signal))
    if len(measured) < max(16, int(2 * fps)):
        return None
    span = np.arange(measured[0], measured[-1] + 1)
    x = np.interp(span, measured, signal[measured])
    x = x - _running_median(x, max(3, int(round(fps)) | 1))
    window = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * window)) ** 2
    freqs = np.fft.rfftfreq(len(x), d=1.0 / fps)
    band = (freqs >= MIN_OSCILLATION_HZ) & (freqs <= min(MAX_OSCILLATION_HZ, fps / 2))
    if not band.any():
        return None
    k = int(np.argmax(np.where(band, spec, -1.0)))
    floor = float(np.median(spec[band])) + 1e-12
    amplitude = 2.0 * math.sqrt(spec[k]) / window.sum()
    repeats = periodicity(x, fps, float(freqs[k]))
    if spec[k] / floor < 8.0 or amplitude < 0.15 or repeats < MIN_PERIODICITY:
        return None
    return {
        "frequency_hz": float(freqs[k]),
        "amplitude_mm": float(amplitude),
        "peak_to_floor": float(spec[k] / floor),
        "periodicity": repeats,
    }


def _stat(x: np.ndarray) -> float | None:
    v = x[~np.isnan(x)]
    return float(np.mean(v)) if v.size else None


def summarise(series: dict[str, np.ndarray], fps: float | None, n_frames: int) -> dict[str, Any]:
    ap = series["aperture_mm"]
    rate = fps or 1.0
    blinks = detect_blinks(ap, rate) if fps else []
    duration = n_frames / rate if fps else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = np.nanmean(series["iris_offset_h_mm"], axis=1) if n_frames else np.array([])
    deg_h = rotation_deg(series["iris_offset_h_mm"])
    valid_h = deg_h[~np.isnan(deg_h).any(axis=1)] if n_frames else np.zeros((0, 2))
    summary: dict[str, Any] = {
        "frames_measured": int((~np.isnan(ap).any(axis=1)).sum()) if n_frames else 0,
        "aperture_mm": {"right": _stat(ap[:, 0]), "left": _stat(ap[:, 1])},
        "mrd1_mm": {"right": _stat(series["mrd1_mm"][:, 0]), "left": _stat(series["mrd1_mm"][:, 1])},
        "mrd2_mm": {"right": _stat(series["mrd2_mm"][:, 0]), "left": _stat(series["mrd2_mm"][:, 1])},
        "asymmetry": {
            "aperture_right_minus_left_mm": _stat(ap[:, 0] - ap[:, 1]),
            "mrd1_right_minus_left_mm": _stat(series["mrd1_mm"][:, 0] - series["mrd1_mm"][:, 1]),
            "iris_h_right_minus_left_mm": _stat(
                series["iris_offset_h_mm"][:, 0] - series["iris_offset_h_mm"][:, 1]
            ),
        },
        "blinks": blinks,
        "blink_count": len(blinks),
        "blink_rate_per_min": (60.0 * len(blinks) / duration) if duration else None,
        "gaze_range_h_deg": (
            float(np.percentile(valid_h.mean(1), 95) - np.percentile(valid_h.mean(1), 5))
            if len(valid_h)
            else None
        ),
        "oscillation": dominant_oscillation(h, rate) if fps else None,
    }
    return summary


def _json_array(a: np.ndarray) -> list[Any]:
    if a.ndim > 1:
        return [_json_array(row) for row in a]
    return [None if math.isnan(v) else round(v, 3) for v in a.tolist()]


def build_metrics(
    rec: TrackReconstruction | None,
    n_frames: int,
    fps: float | None,
    blanked: int,
    faces: np.ndarray,
    bystanders: np.ndarray | None = None,
) -> dict[str, Any]:
    """The metrics document: per-frame arrays (JSON lists, null for missing) and the summary."""
    series = frame_series(rec, n_frames)

    return {
        "schema": SCHEMA,
        "fps": fps,
        "frames": n_frames,
        "frames_blanked": blanked,
        "faces_per_frame": faces.astype(int).tolist(),
        # unconfirmed faces other than the patient's, per frame: not drawn, frame kept (fail closed
        # applies to the patient only)
        "bystanders_not_drawn": (
            bystanders.astype(int).tolist() if bystanders is not None else [0] * n_frames
        ),
        "eye_order": ["right (OD)", "left (OS)"],
        "units": {"length": "mm (iris diameter 11.7 mm as ruler)", "angle": "degrees"},
        "series": {k: _json_array(v) for k, v in series.items()},
        "summary": summarise(series, fps, n_frames),
    }
