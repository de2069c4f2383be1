"""The reader's-ceiling masker writes the original video itself, frame for frame and in time, only
resampled imperceptibly: so what the eval tool scores for it is the reader's own repeatability."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from models.media.video import iter_frames, probe_video

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ceiling", REPO / "tools" / "reader_ceiling_masker.py")
assert _spec is not None and _spec.loader is not None
ceiling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ceiling)

_VIDEO = "videos/livep_d0.mp4"


def test_every_frame_is_the_original_at_its_time_resampled_by_a_few_percent(
    shared_data: Path, tmp_path: Path
) -> None:
    src, dst = shared_data / _VIDEO, tmp_path / "ceiling.mp4"
    ceiling.main([str(src), str(dst)])
    original = list(iter_frames(src))
    copied = list(iter_frames(dst))
    assert [f.time for f in copied] == [f.time for f in original]
    assert probe_video(dst).width == probe_video(src).width
    for a, b in zip(original, copied, strict=True):
        out = b.image.astype(np.int16)
        to_resampled = np.abs(out - ceiling.resample(a.image)).mean()
        assert to_resampled < 4.0  # the re-encode's loss only
        assert to_resampled < np.abs(out - a.image).mean()  # and resampled, not the original as it was
