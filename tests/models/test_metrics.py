"""The exported eye metrics: what is reported, and where nothing can be."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.metrics import IRIS_HIDDEN_FRACTION
from models.pipeline import DigitalMask


def test_gaze_is_null_while_the_lids_hide_the_iris_and_reported_while_they_do_not(
    model: DigitalMask, load_video: Callable[[str], tuple[list[np.ndarray], float]]
) -> None:
    """livep_d18's subject shuts both eyes fully (around frame 95): the iris cannot be seen there, so
    its offset is not a measurement; on every open-eye frame it is."""
    series = model.analyse(*load_video("videos/livep_d18.mp4")).metrics()["series"]
    aperture = np.array(series["aperture_mm"], dtype=float)  # null (None) reads as NaN
    gaze = np.array(series["iris_offset_h_mm"], dtype=float)
    measured = ~np.isnan(aperture)
    shut = measured & (aperture < IRIS_HIDDEN_FRACTION * np.nanmedian(aperture, axis=0))
    assert shut.sum() >= 2, "the clip's full blink is measured as shut"
    assert np.isnan(gaze[shut]).all()
    assert not np.isnan(gaze[measured & ~shut]).any()
