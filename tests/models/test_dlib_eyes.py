"""``tools/dlib_eyes.py`` is the eval tool's reader, frame for frame: every comparison of our metrics
with "the independent reader" (the metrics channel, the pupil channel, the head-pose offsets, the
phantoms) rests on it reading an original exactly as ``../shared/eval`` does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tools import phantoms
from tools.metrics_channel import reader_ear

REPO = Path(__file__).resolve().parents[2]
FRAMES = 40  # livep_d9 frames 0-39: open eyes and a full blink (frames 36-44)

_EVAL_READING = """
import json, sys
import numpy as np
from maskeval import analyze
rec = analyze.analyze_video_original(sys.argv[1], 300, analyze.Cache(None))
ear = np.where(rec["has_face"][:, None], rec["ear"], np.nan)
json.dump({"idx": rec["idx"].tolist(), "ear": ear.tolist()}, sys.stdout)
"""


def test_an_original_is_read_as_the_eval_tool_reads_it(shared_data: Path, tmp_path: Path) -> None:
    """The face boxed as the eval tool boxes an original (found again in a window around the largest
    face): boxed by the whole-frame detection alone, livep_d9's EAR agreed with the eval's at r 0.79-0.83
    and in the first 300 frames it found 5 blink events where the eval's box finds 6."""
    python = phantoms.maskeval_python()
    if python is None:
        pytest.fail("maskeval is not installed: run scripts/test, which sets it up from ../shared/eval")
    frames, fps = phantoms.read_clip(shared_data / "videos/livep_d9.mp4", FRAMES)
    clip = tmp_path / "clip.mp4"
    phantoms.write_clip(clip, frames, fps)
    ours = reader_ear(phantoms.dlib_reading(clip, python), FRAMES)
    run = subprocess.run(
        [str(python), "-c", _EVAL_READING, str(clip)], capture_output=True, text=True, check=True, cwd=REPO
    )
    theirs = json.loads(run.stdout)
    assert theirs["idx"] == list(range(FRAMES))  # every frame of a short clip
    eval_ear = np.asarray(theirs["ear"], dtype=np.float64)
    assert np.isfinite(eval_ear).all()
    np.testing.assert_allclose(ours, eval_ear, atol=1e-9)
