"""A track's landmarks are kept in fixed float32 blocks (memory of long videos): what goes in comes out."""

from __future__ import annotations

import numpy as np

from models.tracking import FIRST_LANDMARK_BLOCK, LANDMARK_BLOCK, FaceObservation, TrackLandmarks


def _observation(rng: np.random.Generator, carried: bool = False) -> FaceObservation:
    points = rng.uniform(0, 1920, (468, 3)).astype(np.float32)
    iris = rng.uniform(0, 1920, (2, 5, 3)).astype(np.float32)
    return FaceObservation(points=points, iris=iris, presence=float(rng.uniform()), carried=carried)


def test_landmarks_read_back_exactly_across_block_boundaries() -> None:
    rng = np.random.default_rng(7)
    n = 2 * LANDMARK_BLOCK + 5
    kept = [_observation(rng, carried=i % 9 == 0) for i in range(n)]
    marks = TrackLandmarks()
    for i, obs in enumerate(kept):
        marks.append(10 + 2 * i, obs)
    assert len(marks) == n
    assert np.array_equal(marks.frames, 10 + 2 * np.arange(n))
    assert np.array_equal(marks.carried, [o.carried for o in kept])
    lo, hi = 10, 2 * LANDMARK_BLOCK + 2  # spans the small first blocks and two full ones
    assert np.array_equal(marks.points(lo, hi), np.stack([o.points for o in kept[lo:hi]]))
    assert np.array_equal(marks.iris(lo, hi), np.stack([o.iris for o in kept[lo:hi]]))
    assert np.array_equal(marks.last().points, kept[-1].points)
    assert marks.last_frame() == 10 + 2 * (n - 1)


_PER_FRAME = 468 * 3 * 4 + 2 * 5 * 3 * 4 + 4 + 8 + 1  # points, iris, presence, frame, carried


def test_a_short_track_holds_a_small_block_not_a_full_one() -> None:
    """A long video has hundreds of spurious few-frame tracks; a full block each grew memory with length."""
    rng = np.random.default_rng(3)
    short = TrackLandmarks()
    for i in range(5):
        short.append(i, _observation(rng))
    assert short.held_bytes == FIRST_LANDMARK_BLOCK * _PER_FRAME


def test_a_long_track_holds_little_more_than_its_frames() -> None:
    rng = np.random.default_rng(4)
    long = TrackLandmarks()
    n = 3 * LANDMARK_BLOCK + 1
    for i in range(n):
        long.append(i, _observation(rng))
    assert n * _PER_FRAME <= long.held_bytes <= n * _PER_FRAME + LANDMARK_BLOCK * _PER_FRAME


def test_after_the_first_block_size_blocks_start_at_multiples_of_it() -> None:
    """Reconstruction reads a track in chunks of LANDMARK_BLOCK frames: aligned chunks are views."""
    rng = np.random.default_rng(5)
    marks = TrackLandmarks()
    for i in range(2 * LANDMARK_BLOCK + 1):
        marks.append(i, _observation(rng))
    chunk = marks.points(LANDMARK_BLOCK, 2 * LANDMARK_BLOCK)
    assert np.shares_memory(chunk, marks.points(LANDMARK_BLOCK, LANDMARK_BLOCK + 1))  # a view, not a copy
