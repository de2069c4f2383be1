"""The crops the landmark networks see (models/perception/roi.py): an antialiased crop averages what
each crop pixel spans, so a shrinking crop of a grainy frame hands the network less grain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from perception_support import load_rgb

from models.perception import roi as roi_ops

PHOTO = "faces/angelina_jolie/1.jpg"  # 1382 x 1868, the face about 740 px across


@pytest.fixture(scope="module")
def photo(shared_data: Path) -> torch.Tensor:
    return torch.from_numpy(load_rgb(shared_data / PHOTO).copy()).permute(2, 0, 1)[None].float()


def _rois(cx: float, cy: float, size: float) -> torch.Tensor:
    return torch.tensor([[cx, cy, size, 0.1]])


def test_a_crop_that_shrinks_the_frame_passes_less_grain(photo: torch.Tensor) -> None:
    rois = _rois(690.0, 800.0, 768.0)  # four frame pixels to a crop pixel at 192
    grain = torch.from_numpy(np.random.default_rng(0).normal(0.0, 20.0, photo.shape).astype(np.float32))
    plain = roi_ops.crop(photo + grain, rois, 192) - roi_ops.crop(photo, rois, 192)
    averaged = roi_ops.crop(photo + grain, rois, 192, antialias=True) - roi_ops.crop(
        photo, rois, 192, antialias=True
    )
    # bilinear between four pixels keeps about half the grain; averaging 4 x 4 samples of the span
    # keeps about a quarter of that
    assert float(plain.std()) > 8.0
    assert float(averaged.std()) < 0.4 * float(plain.std())


def test_an_antialiased_crop_shows_the_same_picture(photo: torch.Tensor) -> None:
    rois = _rois(690.0, 800.0, 768.0)
    plain = roi_ops.crop(photo, rois, 192)
    averaged = roi_ops.crop(photo, rois, 192, antialias=True)
    assert float((averaged - plain).abs().mean()) < 3.0  # grey levels: the same face, softened edges


def test_a_crop_at_the_frames_own_scale_is_left_as_sampled(photo: torch.Tensor) -> None:
    rois = _rois(690.0, 800.0, 250.0)  # 1.3 frame pixels to a crop pixel
    assert roi_ops.subsamples(rois, 192) == 1
    assert torch.equal(roi_ops.crop(photo, rois, 192, antialias=True), roi_ops.crop(photo, rois, 192))


def test_the_largest_face_of_a_batch_sets_the_sampling() -> None:
    rois = torch.tensor([[100.0, 100.0, 200.0, 0.0], [300.0, 300.0, 600.0, 0.0], [0.0, 0.0, 5000.0, 0.0]])
    assert roi_ops.subsamples(rois[:2], 192) == 3
    assert roi_ops.subsamples(rois, 192) == roi_ops.MAX_SUBSAMPLES
    assert roi_ops.subsamples(rois[:0], 192) == 1
