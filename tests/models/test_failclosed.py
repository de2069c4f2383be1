"""Fail closed on the patient, not on bystanders: a frame goes black only when the patient's face is
present and cannot be masked; an unconfirmed bystander is not drawn, counted, and the frame is kept."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np

from models.failclosed import decide
from models.media.video import iter_frames
from models.pipeline import DigitalMask

PATIENT = np.array([100.0, 100.0, 200.0, 220.0])
ELSEWHERE = np.array([[400.0, 80.0, 460.0, 150.0]])
AT_PATIENT = np.array([[110.0, 105.0, 205.0, 225.0]])
NONE = np.zeros((0, 4))


def test_a_bystander_beside_a_confirmed_patient_keeps_the_frame_and_is_counted() -> None:
    out = decide([ELSEWHERE], {0: PATIENT}, window=30)
    assert not out.blank[0] and out.bystanders[0] == 1


def test_the_patient_unconfirmed_where_they_were_a_moment_ago_blanks_the_frame() -> None:
    out = decide([NONE, AT_PATIENT], {0: PATIENT}, window=30)
    assert out.blank.tolist() == [False, True] and out.bystanders[1] == 0


def test_an_unconfirmed_face_where_the_patient_will_be_blanks_the_frame() -> None:
    out = decide([AT_PATIENT, NONE], {1: PATIENT}, window=30)
    assert out.blank[0]


def test_with_no_face_confirmed_anywhere_every_unconfirmed_face_may_be_the_patient() -> None:
    out = decide([ELSEWHERE, NONE], {}, window=30)
    assert out.blank.tolist() == [True, False]


def test_an_unconfirmed_face_long_after_the_patient_left_is_a_bystander() -> None:
    unconfirmed = [NONE] * 100 + [AT_PATIENT]
    out = decide(unconfirmed, {0: PATIENT}, window=30)
    assert not out.blank[100] and out.bystanders[100] == 1


def test_on_a_stage_video_bystanders_no_longer_blank_the_patient(
    model: DigitalMask, shared_data: Path
) -> None:
    """hamilton_white_house: audience shots with faces the mesh cannot confirm. Before this rule every
    such frame went black; now only frames where the patient may be unconfirmed do, and the confirmed
    faces are still drawn."""
    frames = [f.image for f in islice(iter_frames(shared_data / "videos/hamilton_white_house.mp4"), 100)]
    seq = model.analyse(frames, fps=29.97)
    with_unconfirmed = sum(1 for u in seq.analysis.unconfirmed if len(u))
    assert with_unconfirmed > 0
    assert seq.frames_blanked < with_unconfirmed
    assert seq.bystanders_not_drawn > 0
    assert seq.metrics()["bystanders_not_drawn"] == seq.fail_closed.bystanders.tolist()
    kept = [i for i, u in enumerate(seq.analysis.unconfirmed) if len(u) and not seq.fail_closed.blank[i]]
    shown = [i for i in kept if seq.analysis.faces_per_frame[i] > 0]
    assert shown, "a frame with a bystander and a confirmed face"
    out = model.render(seq, shown[0])
    assert out.any() and (out != out[0, 0]).any(axis=-1).sum() > 100  # a face is drawn, not a blank frame
