"""The phantom table (issue #14, item 4): every clinical-sign phantom on 2-3 shared videos, recovered
by the exported eye metrics and, on the mask, by the evaluation tool's dlib reader.

    python tools/phantom_table.py [--videos livep_d18 livep_d0] [--frames 90]

Prints a Markdown table (sign, eye, size, by metrics, on the mask by dlib, tolerance, pass/fail) and
writes benchmarks/results/phantoms_<date>.json. Needs the eval venv (DMASK_MASKEVAL_PYTHON or
.venv-eval/bin/python).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import phantoms  # noqa: E402

from models.api import mask_file  # noqa: E402
from models.perception import FacePerception  # noqa: E402

OD, OS = 0, 1
SIGNS: list[tuple[str, dict[str, Any]]] = [
    ("ptosis", {"eye": "right", "mm": 2.0}),
    ("squint", {"eye": "left", "deg": 15.0}),
    ("nystagmus", {"eye": "both", "hz": 3.0, "deg": 5.0}),
    ("wink", {"eye": "right", "start": 40, "n": 6}),
]


def _med(rows: list[Any], eye: int) -> float:
    return float(np.nanmedian([np.nan if r is None or r[eye] is None else r[eye] for r in rows]))


def _dlib(rows: list[Any], key: str, eye: int) -> float:
    return _med([None if f is None else f[key] for f in rows], eye)


def _deg(mm: float) -> float:
    return math.degrees(math.asin(max(-1.0, min(1.0, mm / phantoms.EYEBALL_RADIUS_MM))))


def _eval_python() -> str:
    for c in (os.environ.get("DMASK_MASKEVAL_PYTHON", ""), str(REPO / ".venv-eval" / "bin" / "python")):
        if c and Path(c).is_file():
            return c
    raise SystemExit("maskeval venv not found (DMASK_MASKEVAL_PYTHON)")


def run(video: Path, frames_n: int, work: Path, perception: FacePerception) -> list[dict[str, Any]]:
    frames, fps = phantoms.read_clip(video, frames_n)
    ruler = phantoms.px_per_mm(phantoms.measure(frames[::10], perception))
    got: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for sign, kw in [("none", {}), *SIGNS]:
        src, dst = work / f"{video.stem}_{sign}.mp4", work / f"{video.stem}_{sign}.masked.mp4"
        phantoms.write_clip(src, phantoms.make(sign, frames, fps, perception=perception, **kw), fps)
        metrics = mask_file(src, dst).metrics
        out = subprocess.run(
            [_eval_python(), str(REPO / "tools" / "dlib_eyes.py"), str(dst)],
            capture_output=True,
            text=True,
            check=True,
        )
        got[sign] = (metrics, json.loads(out.stdout)["frames"])
    (bm, bd) = got["none"]
    rows: list[dict[str, Any]] = []

    def row(
        sign: str,
        eye: str,
        size: str,
        metric: list[float],
        mask: list[float],
        want: list[float],
        tol: float,
        unit: str,
    ) -> None:
        ok_m = all(abs(v - w) <= tol for v, w in zip(metric, want, strict=True))
        ok_d = all(abs(v - w) <= tol for v, w in zip(mask, want, strict=True))
        rows.append(
            {
                "video": video.stem,
                "sign": sign,
                "eye": eye,
                "size": size,
                "metrics": metric,
                "mask_dlib": mask,
                "expected": want,
                "tolerance": f"±{tol:g} {unit}",
                "pass_metrics": ok_m,
                "pass_mask": ok_d,
            }
        )

    m, d = got["ptosis"]
    row(
        "ptosis (MRD1 drop OD, OS)",
        "OD",
        "2 mm",
        [_med(bm["series"]["mrd1_mm"], e) - _med(m["series"]["mrd1_mm"], e) for e in (OD, OS)],
        [(_dlib(bd, "aperture_px", e) - _dlib(d, "aperture_px", e)) / ruler for e in (OD, OS)],
        [2.0, 0.0],
        0.5,
        "mm",
    )
    m, d = got["squint"]
    row(
        "squint (rotation OD, OS)",
        "OS",
        "15°",
        [
            _deg(_med(m["series"]["iris_offset_h_mm"], e) - _med(bm["series"]["iris_offset_h_mm"], e))
            for e in (OD, OS)
        ],
        [_deg((_dlib(d, "pupil_h_px", e) - _dlib(bd, "pupil_h_px", e)) / ruler) for e in (OD, OS)],
        [0.0, 15.0],
        2.0,
        "°",
    )
    m, d = got["nystagmus"]
    osc = m["summary"].get("oscillation") or {}
    ph = np.array(
        [np.nan if f is None or f["pupil_h_px"][OS] is None else f["pupil_h_px"][OS] for f in d], float
    )
    ph = np.nan_to_num(ph - np.nanmean(ph))
    spec = np.abs(np.fft.rfft(ph))
    freqs = np.fft.rfftfreq(len(ph), 1 / fps)
    band = (freqs >= 1) & (freqs <= 12)
    fd = float(freqs[band][np.argmax(spec[band])]) if band.any() else float("nan")
    row(
        "nystagmus (frequency)",
        "both",
        "3 Hz",
        [float(osc.get("frequency_hz") or np.nan)],
        [fd],
        [3.0],
        0.3,
        "Hz",
    )
    row(
        "nystagmus (amplitude)",
        "both",
        "5° = 1.05 mm",
        [float(osc.get("amplitude_mm") or np.nan)],
        [float("nan")],
        [phantoms.rotation_mm(5.0)],
        0.5,
        "mm",
    )
    m, d = got["wink"]
    win = slice(41, 45)
    row(
        "wink (aperture OD, OS change)",
        "OD",
        "6 frames closed",
        [
            float(
                np.nanmax(
                    [r[OD] if r and r[OD] is not None else np.nan for r in m["series"]["aperture_mm"][win]]
                )
            ),
            _med(m["series"]["aperture_mm"][win], OS) - _med(bm["series"]["aperture_mm"][win], OS),
        ],
        [
            float(np.nanmax([f["aperture_px"][OD] if f else np.nan for f in d[win]])) / ruler,
            (_dlib(d[win], "aperture_px", OS) - _dlib(bd[win], "aperture_px", OS)) / ruler,
        ],
        [0.0, 0.0],
        0.5,
        "mm",
    )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", nargs="+", default=["livep_d18", "livep_d0"])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    a = ap.parse_args()
    perception = FacePerception("cpu")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in a.videos:
            rows += run(a.data / "videos" / f"{v}.mp4", a.frames, Path(tmp), perception)

    def fmt(xs: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in xs)

    def verdict(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    head = ["video", "sign", "eye", "size", "by metrics", "on the mask (dlib)", "expected", "tolerance"]
    print("| " + " | ".join([*head, "metrics", "mask"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["video"], r["sign"], r["eye"], r["size"], fmt(r["metrics"]), fmt(r["mask_dlib"])]
        cells += [fmt(r["expected"]), r["tolerance"], verdict(r["pass_metrics"]), verdict(r["pass_mask"])]
        print("| " + " | ".join(cells) + " |")
    out = REPO / "benchmarks" / "results" / f"phantoms_{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"frames": a.frames, "rows": rows}, indent=1, default=float))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
