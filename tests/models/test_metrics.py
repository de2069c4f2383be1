"""The exported eye metrics: what is reported, and where nothing can be."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from models.metrics import IRIS_HIDDEN_FRACTION
from models.pipeline import DigitalMask


def test_gaze_is_null_while_the_lids_hide_the_iris_and_reported_while_they_do_not(
    model: DigitalMask, shared_data: Path
) -> None:
    """livep_d18's subject shuts both eyes fully (around frame 95): the iris cannot be seen there, so
    its offset is not a measurement; on every open-eye frame it is."""
    with av.open(str(shared_data / "videos/livep_d18.mp4")) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    series = model.analyse(frames, fps).metrics()["series"]
    aperture = np.array([[np.nan if v is None else v for v in row] for row in series["aperture_mm"]])
    gaze = np.array([[np.nan if v is None else v for v in row] for row in series["iris_offset_h_mm"]])
    measured = ~np.isnan(aperture)
    shut = measured & (aperture < IRIS_HIDDEN_FRACTION * np.nanmedian(aperture, axis=0))
    assert shut.sum() >= 2, "the clip's full blink is measured as shut"
    assert np.isnan(gaze[shut]).all()
    assert not np.isnan(gaze[measured & ~shut]).any()
