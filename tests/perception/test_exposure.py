"""Faces in an underexposed frame read at a normal exposure (models/perception/exposure.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from perception_support import load_rgb

from models.perception.exposure import (
    MAX_GAIN,
    MIN_GAIN,
    NORMAL_HIGHLIGHT,
    expose,
    expose_levels,
    exposure_gain,
    highlight,
    linear_to_srgb,
    srgb_to_linear,
)

PHOTOS = ("faces/angelina_jolie/1.jpg", "faces/barack_obama/2.png", "faces/kate_winslet/3.jpg")


def filmed_with(frame: torch.Tensor, light: float) -> torch.Tensor:
    """The same frame as an 8-bit camera would film it with ``light`` times the light."""
    return torch.round(linear_to_srgb(srgb_to_linear(frame / 255.0) * light) * 255.0)


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[torch.Tensor]:
    """Normally exposed photos as (1, 3, H, W) frames in 0..255."""
    return [torch.from_numpy(load_rgb(shared_data / p).copy()).permute(2, 0, 1)[None].float() for p in PHOTOS]


def test_normally_exposed_frames_are_read_as_filmed(frames: list[torch.Tensor]) -> None:
    assert [float(exposure_gain(f)) for f in frames] == [1.0] * len(frames)


def test_a_frame_less_than_two_stops_under_is_read_as_filmed(frames: list[torch.Tensor]) -> None:
    assert [float(exposure_gain(filmed_with(f, 0.3))) for f in frames] == [1.0] * len(frames)


def test_a_frame_filmed_with_a_tenth_of_the_light_is_brought_back_to_a_normal_exposure(
    frames: list[torch.Tensor],
) -> None:
    for frame in frames:
        dim = filmed_with(frame, 0.1)
        gain = float(exposure_gain(dim))
        assert MIN_GAIN <= gain <= MAX_GAIN
        restored = expose(dim, torch.tensor([gain]))
        assert abs(float(highlight(restored)) - NORMAL_HIGHLIGHT) < 5.0
        # the picture itself comes back, not only its brightness: its shading follows the original's
        r = np.corrcoef(frame.flatten().numpy(), restored.flatten().numpy())[0, 1]
        assert r > 0.97, r


def test_a_black_frame_is_amplified_at_most_four_stops() -> None:
    assert float(exposure_gain(torch.zeros(1, 3, 64, 64))) == MAX_GAIN


def test_an_8_bit_frame_is_exposed_by_table_to_the_same_values(frames: list[torch.Tensor]) -> None:
    dim = filmed_with(frames[0], 0.1)  # whole levels in 0..255, as a camera's
    gain = exposure_gain(dim)
    looked_up, computed = expose_levels(dim.to(torch.uint8), gain), expose(dim, gain.reshape(1))
    assert torch.allclose(looked_up, computed, rtol=0, atol=1e-3)  # to float rounding
