"""Does the eye state flatten in dim light? Our own reading of a clip against the same clip filmed darker.

Why: issue #14 item 1 asks that low light not flatten the measured aperture (a dim exam room, a
telemedicine call at night). No shared video is dim, so each is made dim here as a camera would film
the same scene with less light: the frame's sRGB values decoded to linear light, scaled by the
exposure, counted as photons (shot noise) with the sensor's read noise, digitised at 10 bits, then
(for the ``gained`` condition) amplified back to the original brightness, as auto-gain does, and
encoded to 8-bit sRGB again. The ``dark`` condition keeps the exposure's darkness (a fixed-exposure
camera). The comparison is with *our own* reading of the original (the same appearance draw), so what
it shows is what the dimming costs the measurement, not how it agrees with another reader.

Per video and eye: the frames measured, the per-frame aperture r against the original's, the spread
of the aperture (its 5th-95th percentile range) relative to the original's (below 1 = flattened), the
open level relative to the original's, what shut frames measure, and the exported blink events
recovered (matched within 2 frames).

    .venv/bin/python tools/low_light.py ../shared/data/videos/*.mp4 --frames 300 --out low_light.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.metrics import detect_blinks, frame_series  # noqa: E402
from models.perception.exposure import linear_to_srgb, srgb_to_linear  # noqa: E402
from models.pipeline import DigitalMask  # noqa: E402
from tools.phantoms import read_clip  # noqa: E402

FULL_WELL_E = 6000.0  # electrons at full scale at the original's exposure (a small sensor's pixel)
READ_NOISE_E = 3.0
ADC_LEVELS = 1023  # a 10-bit readout
SHUT_FRACTION = 0.2  # original frames below this fraction of the eye's median aperture count as shut
BLINK_TOLERANCE = 2


def dim(frame: np.ndarray, exposure: float, gained: bool, rng: np.random.Generator) -> np.ndarray:
    """``frame`` (RGB uint8) as filmed with ``exposure`` times the light; amplified back if ``gained``."""
    light = srgb_to_linear(torch.from_numpy(frame / 255.0)).numpy() * exposure
    electrons = rng.poisson(light * FULL_WELL_E) + rng.normal(0.0, READ_NOISE_E, frame.shape)
    digital = np.round(np.clip(electrons / FULL_WELL_E, 0.0, 1.0) * ADC_LEVELS) / ADC_LEVELS
    if gained:
        digital = digital / exposure
    return np.round(linear_to_srgb(torch.from_numpy(digital)).numpy() * 255.0).astype(np.uint8)


def _r(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 10 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return round(float(np.corrcoef(a[ok], b[ok])[0, 1]), 3)


def _spread(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, 95) - np.percentile(x, 5)) if x.size else float("nan")


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if x.size else float("nan")


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if np.isfinite(a) and np.isfinite(b) and b != 0 else None


def blink_recovery(reference: list[dict[str, float]], other: list[dict[str, float]]) -> dict[str, int]:
    """Events of ``other`` matched one-to-one to ``reference`` within BLINK_TOLERANCE frames of their
    deepest frame."""
    ref = [b["frame"] for b in reference]
    oth = [b["frame"] for b in other]
    used: set[int] = set()
    tp = 0
    for r in ref:
        match = next((i for i, o in enumerate(oth) if i not in used and abs(o - r) <= BLINK_TOLERANCE), None)
        if match is not None:
            used.add(match)
            tp += 1
    return {"tp": tp, "fp": len(oth) - tp, "fn": len(ref) - tp}


def compare(original: dict[str, np.ndarray], dimmed: dict[str, np.ndarray], fps: float) -> dict[str, Any]:
    """What the dimming did to the measured eye state, per eye (OD, OS)."""
    a0, a1 = original["aperture_mm"], dimmed["aperture_mm"]
    out: dict[str, Any] = {
        "measured": round(float(np.isfinite(a1).all(axis=1).mean()), 3),
        "measured_original": round(float(np.isfinite(a0).all(axis=1).mean()), 3),
        "eyes": [],
    }
    for eye in range(2):
        x, y = a0[:, eye], a1[:, eye]
        gaze0, gaze1 = original["iris_offset_h_mm"][:, eye], dimmed["iris_offset_h_mm"][:, eye]
        both = np.isfinite(x) & np.isfinite(y)
        open_level = float(np.nanmedian(x))
        shut = both & (x < SHUT_FRACTION * open_level)
        out["eyes"].append(
            {
                "aperture_r": _r(x, y),
                "spread_ratio": _ratio(_spread(y[both]), _spread(x[both])),
                "open_ratio": _ratio(_median(y[both]), _median(x[both])),
                "shut_frames": int(shut.sum()),
                "shut_mm_original": round(float(np.mean(x[shut])), 2) if shut.any() else None,
                "shut_mm": round(float(np.mean(y[shut])), 2) if shut.any() else None,
                "iris_offset_h_r": _r(gaze0, gaze1),
            }
        )
    out["blinks"] = blink_recovery(detect_blinks(a0, fps), detect_blinks(a1, fps))
    return out


CONDITIONS = {"dark": (0.1, False), "gained_0.03": (0.03, True), "gained_0.01": (0.01, True)}


def probe(video: Path, frames_max: int, seed: int) -> dict[str, Any]:
    frames, fps = read_clip(video, frames_max)

    def reading(clip: list[np.ndarray]) -> dict[str, np.ndarray]:
        model = DigitalMask(appearance_seed=seed)
        seq = model.analyse(clip, fps)
        return frame_series(seq.patient, seq.n_frames)

    base = reading(frames)
    result: dict[str, Any] = {"frames": len(frames), "fps": fps}
    for name, (exposure, gained) in CONDITIONS.items():
        rng = np.random.default_rng(seed)
        dimmed = [dim(f, exposure, gained, rng) for f in frames]
        result[name] = {"exposure": exposure, "gained": gained, **compare(base, reading(dimmed), fps)}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--frames", type=int, default=300, help="first N frames of each video")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    results = {}
    for video in args.videos:
        results[video.stem] = probe(video, args.frames, args.seed)
        print(video.stem, json.dumps({k: v for k, v in results[video.stem].items() if isinstance(v, dict)}))
    doc = {"what": __doc__.splitlines()[0], "conditions": CONDITIONS, "videos": results}
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
