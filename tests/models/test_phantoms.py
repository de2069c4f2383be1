"""Clinical-sign phantoms (issue #14, item 4): one sign of known size added to a real clip must be
recovered by the exported eye metrics on the correct eye, and carried by the mask as read by the
evaluation tool's independent dlib reader. Each sign is compared with the same clip untouched."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import phantoms  # noqa: E402

from models.api import mask_file  # noqa: E402

CLIP = "videos/livep_d18.mp4"
FRAMES = 60  # the wink closes frames 40-45
OD, OS = 0, 1

# Known gap, measured on 2026-12-05 (models/README.md, "Clinical-sign phantoms"): none of the signs is
# yet recovered within the tolerances on this small-faced clip (iris 18 px, 1.5 px/mm). The
# tests keep the tolerances and are expected to fail until the measurement (or the phantom) is fixed;
# strict, so a sign that starts passing fails the run and the marker must come off.
pytestmark = pytest.mark.xfail(
    strict=True, reason="issue #14 phantom targets not met yet (see models/README.md)"
)


def _maskeval_python() -> Path:
    for candidate in (
        os.environ.get("DMASK_MASKEVAL_PYTHON", ""),
        str(REPO / ".venv-eval" / "bin" / "python"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail("maskeval is not installed: run scripts/test, which sets it up from ../shared/eval")


@pytest.fixture(scope="session")
def clip(shared_data: Path) -> tuple[list[np.ndarray], float]:
    return phantoms.read_clip(shared_data / CLIP, FRAMES)


@pytest.fixture(scope="session")
def ruler(clip: tuple[list[np.ndarray], float]) -> float:
    """Pixels per mm on the original clip (iris diameter 11.7 mm, our perception)."""
    from models.perception import FacePerception

    return phantoms.px_per_mm(phantoms.measure(clip[0][::10], FacePerception("cpu")))


@pytest.fixture(scope="session")
def masked(clip: tuple[list[np.ndarray], float], tmp_path_factory: pytest.TempPathFactory):
    """sign -> (metrics, dlib reading of the mask); each phantom masked once per session."""
    cache: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    work = tmp_path_factory.mktemp("phantoms")

    def get(sign: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if sign not in cache:
            frames, fps = clip
            src, dst = work / f"{sign}.mp4", work / f"{sign}.masked.mp4"
            phantoms.write_clip(src, phantoms.make(sign, frames, fps, **kw), fps)
            metrics = mask_file(src, dst).metrics
            out = subprocess.run(
                [str(_maskeval_python()), str(REPO / "tools" / "dlib_eyes.py"), str(dst)],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            cache[sign] = (metrics, json.loads(out.stdout))
        return cache[sign]

    return get


def _median(series: list[Any], eye: int) -> float:
    return float(np.nanmedian([np.nan if r is None or r[eye] is None else r[eye] for r in series]))


def _dlib_median(reading: dict[str, Any], key: str, eye: int) -> float:
    return _median([None if f is None else f[key] for f in reading["frames"]], eye)


def test_ptosis_lowers_mrd1_of_that_eye_only(masked) -> None:
    base, _ = masked("none")
    sign, _ = masked("ptosis", eye="right", mm=2.0)
    drop_od = _median(base["series"]["mrd1_mm"], OD) - _median(sign["series"]["mrd1_mm"], OD)
    drop_os = _median(base["series"]["mrd1_mm"], OS) - _median(sign["series"]["mrd1_mm"], OS)
    assert abs(drop_od - 2.0) <= 0.5, (drop_od, drop_os)
    assert abs(drop_os) <= 0.5, (drop_od, drop_os)


def test_ptosis_is_carried_by_the_mask(masked, ruler: float) -> None:
    _, base = masked("none")
    _, sign = masked("ptosis", eye="right", mm=2.0)
    drop = [
        (_dlib_median(base, "aperture_px", e) - _dlib_median(sign, "aperture_px", e)) / ruler
        for e in (OD, OS)
    ]
    assert abs(drop[OD] - 2.0) <= 0.5, drop
    assert abs(drop[OS]) <= 0.5, drop


def _deg(mm: float) -> float:
    return math.degrees(math.asin(max(-1.0, min(1.0, mm / phantoms.EYEBALL_RADIUS_MM))))


def test_squint_moves_the_iris_offset_of_that_eye_only(masked) -> None:
    base, _ = masked("none")
    sign, _ = masked("squint", eye="left", deg=15.0)
    key = "iris_offset_h_mm"
    shift = [_median(sign["series"][key], e) - _median(base["series"][key], e) for e in (OD, OS)]
    assert abs(_deg(shift[OS]) - 15.0) <= 2.0, shift
    assert abs(_deg(shift[OD])) <= 2.0, shift


def test_squint_is_carried_by_the_mask(masked, ruler: float) -> None:
    _, base = masked("none")
    _, sign = masked("squint", eye="left", deg=15.0)
    shift = [
        (_dlib_median(sign, "pupil_h_px", e) - _dlib_median(base, "pupil_h_px", e)) / ruler for e in (OD, OS)
    ]
    assert abs(_deg(shift[OS]) - 15.0) <= 2.0, shift
    assert abs(_deg(shift[OD])) <= 2.0, shift


def test_nystagmus_frequency_and_amplitude_are_recovered(masked) -> None:
    sign, _ = masked("nystagmus", eye="both", hz=3.0, deg=5.0)
    osc = sign["summary"]["oscillation"]
    assert osc is not None and osc.get("frequency_hz") is not None, osc
    assert abs(osc["frequency_hz"] - 3.0) <= 0.3, osc
    assert abs(osc["amplitude_mm"] - phantoms.rotation_mm(5.0)) <= 0.5, osc


def test_wink_closes_that_eye_only(masked) -> None:
    sign, _ = masked("wink", eye="right", start=40, n=6)
    closed = [r for r in sign["series"]["aperture_mm"][41:45]]
    assert all(r[OD] is not None and r[OD] <= 0.5 for r in closed), closed
    base, _ = masked("none")
    open_os = _median(base["series"]["aperture_mm"][41:45], OS)
    assert all(abs(r[OS] - open_os) <= 0.5 for r in closed), (closed, open_os)


def test_wink_is_carried_by_the_mask(masked, ruler: float) -> None:
    _, base = masked("none")
    _, sign = masked("wink", eye="right", start=40, n=6)
    frames = [f for f in sign["frames"][41:45] if f is not None]
    ref = [f for f in base["frames"][41:45] if f is not None]
    assert frames and ref
    od = max(f["aperture_px"][OD] for f in frames) / ruler
    os_drop = (
        abs(
            np.median([f["aperture_px"][OS] for f in ref]) - np.median([f["aperture_px"][OS] for f in frames])
        )
        / ruler
    )
    assert od <= 0.5 + 0.0, od
    assert os_drop <= 0.5, os_drop
