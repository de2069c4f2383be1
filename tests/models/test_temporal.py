"""Temporal filtering keeps blinks (>= 100 ms) and eye oscillation up to 5 Hz; the metrics find them."""

from __future__ import annotations

import numpy as np

from models.filters import median3
from models.metrics import detect_blinks, dominant_oscillation


def test_a_100_ms_blink_survives_the_filter_at_25_and_30_fps() -> None:
    for fps in (25.0, 30.0):
        n = int(fps * 4)
        aperture = np.full(n, 9.0)
        start = n // 2
        closed = max(2, int(round(0.1 * fps)))  # 100 ms: 2.5 frames at 25 fps -> 2 full frames
        aperture[start : start + closed] = 1.0
        filtered = median3(aperture)
        assert filtered[start : start + closed].max() <= 1.0
        blinks = detect_blinks(np.stack([filtered, filtered], axis=1), fps)
        assert len(blinks) == 1


def test_a_blink_is_timed_at_the_middle_of_its_shut_frames() -> None:
    """A complete blink reads 0 mm for several frames; its moment is the middle of them, not the first
    (an independent reader's minimum falls there, and events are matched within two frames)."""
    aperture = np.full(60, 9.0)
    aperture[20:23] = 4.0  # closing
    aperture[23:30] = 0.0  # shut for seven frames
    aperture[30:32] = 4.0  # opening
    (blink,) = detect_blinks(np.stack([aperture, aperture], axis=1), 30.0)
    assert blink["frame"] == 26
    assert blink["min_aperture_mm"] == 0.0


def test_a_5_hz_oscillation_keeps_most_of_its_amplitude() -> None:
    for fps in (25.0, 30.0):
        t = np.arange(int(fps * 6)) / fps
        signal = 1.0 * np.sin(2 * np.pi * 5.0 * t + 0.3)
        filtered = median3(signal)
        amp = np.sqrt(2) * filtered[5:-5].std()
        assert amp >= 0.75, (fps, amp)


def test_a_single_frame_glitch_is_removed() -> None:
    x = np.full(30, 9.0)
    x[10] = 0.0
    assert median3(x)[10] == 9.0


def test_nystagmus_like_oscillation_is_found_with_its_frequency() -> None:
    fps = 30.0
    t = np.arange(int(fps * 8)) / fps
    rng = np.random.default_rng(0)
    signal = 0.8 * np.sin(2 * np.pi * 3.5 * t) + 0.1 * rng.standard_normal(len(t))
    found = dominant_oscillation(median3(signal), fps)
    assert found is not None and abs(found["frequency_hz"] - 3.5) < 0.2


def test_nystagmus_is_found_through_the_patients_own_gaze_shifts() -> None:
    """Looking around (fixations joined by saccades of several mm) must not hide a small nystagmus."""
    fps = 25.0
    t = np.arange(int(fps * 8)) / fps
    fixations = np.repeat(np.random.default_rng(10).uniform(-4, 4, 10), len(t) // 10 + 1)[: len(t)]
    signal = fixations + 0.6 * np.sin(2 * np.pi * 3.0 * t)
    found = dominant_oscillation(median3(signal), fps)
    assert found is not None and abs(found["frequency_hz"] - 3.0) < 0.2, found
    assert abs(found["amplitude_mm"] - 0.6) < 0.15, found


def test_nystagmus_keeps_its_frequency_through_blinks() -> None:
    """Frames where the lids hide the iris have no gaze (null); the oscillation's clock runs on."""
    fps = 25.0
    t = np.arange(int(fps * 8)) / fps
    signal = 0.6 * np.sin(2 * np.pi * 3.0 * t) + 0.05 * np.random.default_rng(3).standard_normal(len(t))
    for start in np.linspace(15, len(t) - 15, 8).astype(int):  # eight blinks of four frames
        signal[start : start + 4] = np.nan
    found = dominant_oscillation(signal, fps)
    assert found is not None and abs(found["frequency_hz"] - 3.0) < 0.2, found


def test_steady_gaze_reports_no_oscillation() -> None:
    rng = np.random.default_rng(1)
    assert dominant_oscillation(0.05 * rng.standard_normal(240), 30.0) is None
