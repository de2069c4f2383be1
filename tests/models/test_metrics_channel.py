"""The metrics channel finds the reader's blinks and matches ours to them by the eval tool's rules."""

from __future__ import annotations

import numpy as np

from tools.metrics_channel import blink_events, match


def test_a_blink_is_a_run_below_seven_tenths_of_the_median_placed_at_its_minimum() -> None:
    ear = np.full(30, 0.3)
    ear[10:14] = [0.2, 0.1, 0.05, 0.15]  # one blink, deepest at frame 12
    ear[20] = 0.22  # 0.73 of the median: not a blink
    assert blink_events(ear) == [12]


def test_a_frame_without_a_face_splits_a_run() -> None:
    ear = np.full(30, 0.3)
    ear[10:15] = [0.1, 0.1, np.nan, 0.05, 0.1]
    assert blink_events(ear) == [10, 13]


def test_events_match_one_to_one_within_two_frames() -> None:
    # 10 and 11 both lie within two frames of 12; only one of them may take it
    assert match(reference=[12, 40], test=[10, 11, 43]) == (1, 2, 1)
