"""Dim light does not open a shut eye (issue #14 item 1: low light must not flatten the aperture)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from models.pipeline import DigitalMask


def aperture(model: DigitalMask, frames: list[np.ndarray], fps: float) -> np.ndarray:
    return np.array(model.analyse(frames, fps).metrics()["series"]["aperture_mm"], dtype=float)


def test_a_shut_eye_filmed_with_a_tenth_of_the_light_still_measures_shut(
    model: DigitalMask,
    load_video: Callable[[str], tuple[list[np.ndarray], float]],
    load_tool: Callable[[str], ModuleType],
) -> None:
    """livep_d18's full blink (around frame 95), filmed again as a fixed-exposure camera would with a
    tenth of the light (tools/low_light.py's camera: shot and read noise, a 10-bit readout). Read as
    filmed, its shut frames measured 0.6 mm (OD) and 1.4 mm (OS), against 0.2 and 0.3 mm in the
    original light; read at a normal exposure, 0.5 and 0.6 mm."""
    frames, fps = load_video("videos/livep_d18.mp4")
    frames = frames[:130]
    low_light = load_tool("low_light")
    rng = np.random.default_rng(1)
    dim = [low_light.dim(f, 0.1, False, rng) for f in frames]
    bright, dark = aperture(model, frames, fps), aperture(model, dim, fps)
    shut = bright < low_light.SHUT_FRACTION * np.nanmedian(bright, axis=0)
    for eye in range(2):
        assert shut[:, eye].sum() >= 3, "the blink is measured as shut in the original light"
        assert np.nanmean(dark[shut[:, eye], eye]) < 1.0, dark[shut[:, eye], eye]
