"""Clinical-sign phantoms (issue #14, item 4): one sign of known size added to a real clip must be
recovered by the exported eye metrics on the correct eye, and carried by the mask: the evaluation
tool's independent dlib reader must see on the mask what it sees on the phantom itself, or more of the
truth (it does not see every sign at its full size even on the phantom: a shut eye never reads 0 mm to
it, its shape model pulls the other eye along, and it sees almost none of the ptosis; a mask that shows
more of the true sign than the reader finds on the phantom carries the sign). Each sign is compared with
the same clip untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.api import mask_file
from models.eyes import rotation_deg
from models.pipeline import DigitalMask
from tools import phantoms

CLIP = "videos/livep_d18.mp4"
FRAMES = 60  # the wink shuts frames 40-45
WINK = slice(41, 45)
OD, OS = 0, 1
APPEARANCE_SEED = 1


def _not_met(reason: str) -> pytest.MarkDecorator:
    """A target of issue #14 not yet met on this clip (models/README.md, "Clinical-sign phantoms").
    Strict: a sign that starts passing fails the run, so the marker must come off."""
    return pytest.mark.xfail(strict=True, reason=f"issue #14 phantom target not met yet: {reason}")


def _dlib_read(video: Path) -> dict[str, Any]:
    python = phantoms.maskeval_python()
    if python is None:
        pytest.fail("maskeval is not installed: run scripts/test, which sets it up from ../shared/eval")
    return phantoms.dlib_reading(video, python)


@pytest.fixture(scope="session")
def whole_video(shared_data: Path) -> tuple[list[np.ndarray], float]:
    return phantoms.read_clip(shared_data / CLIP)


@pytest.fixture(scope="session")
def ruler(whole_video: tuple[list[np.ndarray], float]) -> float:
    """Pixels per mm on the original clip (iris diameter 11.7 mm, our perception)."""
    from models.perception import FacePerception

    return phantoms.px_per_mm(phantoms.measure(whole_video[0][:FRAMES:10], FacePerception("cpu")))


Masked = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="session")
def masked(whole_video: tuple[list[np.ndarray], float], tmp_path_factory: pytest.TempPathFactory):
    """sign -> (exported metrics, dlib reading of the mask, dlib reading of the phantom itself); each
    phantom made and masked once per session. The wink's shut eye is the subject's own, from anywhere
    in the video (frame 95)."""
    cache: dict[str, Masked] = {}
    work = tmp_path_factory.mktemp("phantoms")

    def get(sign: str, **kw: Any) -> Masked:
        if sign not in cache:
            whole, fps = whole_video
            src, dst = work / f"{sign}.mp4", work / f"{sign}.masked.mp4"
            made = phantoms.make(sign, whole[:FRAMES], fps, donors=whole, **kw)
            phantoms.write_clip(src, made, fps)
            # the same appearance draw for every phantom (a fresh model: a model's draws follow one another):
            # the reader's view of a mask depends on its draw (skin tone and light against the lashes),
            # and a sign must be compared with its clip under the same draw
            metrics = mask_file(src, dst, model=DigitalMask(appearance_seed=APPEARANCE_SEED)).metrics
            cache[sign] = (metrics, _dlib_read(dst), _dlib_read(src))
        return cache[sign]

    return get


_median = phantoms.median_per_eye


def _dlib_median(reading: dict[str, Any], key: str, eye: int, frames: slice = slice(None)) -> float:
    return _median([None if f is None else f[key] for f in reading["frames"][frames]], eye)


def _carried(on_mask: list[float], on_phantom: list[float], truth: list[float], tol: float) -> bool:
    """Per eye, the reader's reading of the mask is within ``tol`` of its reading of the phantom, or
    nearer the truth than that."""
    return all(abs(m - t) <= abs(p - t) + tol for m, p, t in zip(on_mask, on_phantom, truth, strict=True))


def _change(sign: dict[str, Any], base: dict[str, Any], key: str, ruler: float, frames: slice = slice(None)):
    """Per eye, the reader's median ``key`` on the sign minus on the untouched clip, in mm."""
    return [
        (_dlib_median(sign, key, e, frames) - _dlib_median(base, key, e, frames)) / ruler for e in (OD, OS)
    ]


@_not_met("MRD1 drops 0.46 of 2 mm on this small face")
def test_ptosis_lowers_mrd1_of_that_eye_only(masked) -> None:
    base, _, _ = masked("none")
    sign, _, _ = masked("ptosis", eye="right", mm=2.0)
    drop_od = _median(base["series"]["mrd1_mm"], OD) - _median(sign["series"]["mrd1_mm"], OD)
    drop_os = _median(base["series"]["mrd1_mm"], OS) - _median(sign["series"]["mrd1_mm"], OS)
    assert abs(drop_od - 2.0) <= 0.5, (drop_od, drop_os)
    assert abs(drop_os) <= 0.5, (drop_od, drop_os)


def test_ptosis_reads_on_the_mask_as_on_the_phantom(masked, ruler: float) -> None:
    _, base_mask, base_phantom = masked("none")
    _, mask, phantom = masked("ptosis", eye="right", mm=2.0)
    on_mask = _change(mask, base_mask, "aperture_px", ruler)
    on_phantom = _change(phantom, base_phantom, "aperture_px", ruler)
    assert _carried(on_mask, on_phantom, [-2.0, 0.0], 0.5), (on_mask, on_phantom)


def _deg(mm: float) -> float:
    return float(rotation_deg(np.asarray(mm)))


def test_squint_moves_the_iris_offset_of_that_eye_only(masked) -> None:
    base, _, _ = masked("none")
    sign, _, _ = masked("squint", eye="left", deg=15.0)
    key = "iris_offset_h_mm"
    shift = [_median(sign["series"][key], e) - _median(base["series"][key], e) for e in (OD, OS)]
    assert abs(_deg(shift[OS]) - 15.0) <= 2.0, shift
    assert abs(_deg(shift[OD])) <= 2.0, shift


def test_squint_reads_on_the_mask_as_on_the_phantom(masked, ruler: float) -> None:
    _, base_mask, base_phantom = masked("none")
    _, mask, phantom = masked("squint", eye="left", deg=15.0)
    on_mask = [_deg(x) for x in _change(mask, base_mask, "pupil_h_px", ruler)]
    on_phantom = [_deg(x) for x in _change(phantom, base_phantom, "pupil_h_px", ruler)]
    assert _carried(on_mask, on_phantom, [0.0, 15.0], 2.0), (on_mask, on_phantom)


def test_nystagmus_frequency_is_recovered(masked) -> None:
    sign, _, _ = masked("nystagmus", eye="both", hz=3.0, deg=5.0)
    osc = sign["summary"]["oscillation"]
    assert osc is not None and abs(osc["frequency_hz"] - 3.0) <= 0.3, osc


def test_nystagmus_amplitude_is_recovered(masked) -> None:
    sign, _, _ = masked("nystagmus", eye="both", hz=3.0, deg=5.0)
    osc = sign["summary"]["oscillation"]
    assert osc is not None and abs(osc["amplitude_mm"] - phantoms.rotation_mm(5.0)) <= 0.5, osc


def test_wink_closes_that_eye_only(masked) -> None:
    sign, _, _ = masked("wink", eye="right", start=40, n=6)
    base, _, _ = masked("none")
    shut = sign["series"]["aperture_mm"][WINK]
    assert all(r[OD] is not None and r[OD] <= 0.5 for r in shut), shut
    open_os = _median(base["series"]["aperture_mm"][WINK], OS)
    assert all(abs(r[OS] - open_os) <= 0.5 for r in shut), (shut, open_os)


@_not_met("the reader sees OD close 2.2 mm on the mask against 2.8 mm on the phantom")
def test_wink_reads_on_the_mask_as_on_the_phantom(masked, ruler: float) -> None:
    _, base_mask, base_phantom = masked("none")
    _, mask, phantom = masked("wink", eye="right", start=40, n=6)
    on_mask = _change(mask, base_mask, "aperture_px", ruler, WINK)
    on_phantom = _change(phantom, base_phantom, "aperture_px", ruler, WINK)
    shut = -_dlib_median(base_phantom, "aperture_px", OD, WINK) / ruler  # the truth: OD shut, OS as it was
    assert _carried(on_mask, on_phantom, [shut, 0.0], 0.5), (on_mask, on_phantom)
