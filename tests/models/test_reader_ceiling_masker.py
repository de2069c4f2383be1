"""The reader's-ceiling masker writes the original video itself, frame for frame and in time, only
resampled imperceptibly: so what the eval tool scores for it is the reader's own repeatability."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from models.media.video import iter_frames, probe_video

_VIDEO = "videos/livep_d0.mp4"


def test_every_frame_is_the_original_at_its_time_resampled_by_a_few_percent(
    shared_data: Path, tmp_path: Path, load_tool: Callable[[str], ModuleType]
) -> None:
    ceiling = load_tool("reader_ceiling_masker")
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
