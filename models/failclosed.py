"""Fail closed on the patient, not on bystanders: which frames must be written blank.

Pass 1 reports, per frame, the faces the detector saw confidently but the mesh could not confirm. Such
a face cannot be masked, so it must never be drawn. Whether the whole frame must be blanked depends on
whose face it is:

* the **patient** (the tracked face the metrics are about) unconfirmed in a frame where they are
  present -> the frame is blanked: the clinical record must not show a wrong or stale mask;
* any **other** unconfirmed face -> not drawn, counted, and the frame is kept: the output is drawn
  from numbers on a plain background, so no input pixel of that bystander can reach it anyway.

An unconfirmed face is taken for the patient when it lies where the patient was (or will be) within
``window`` frames of a frame where the patient's face was confirmed; when no face was confirmed in the
whole sequence every unconfirmed face may be the patient, so those frames are blanked. Pure functions
of boxes and frame indices, so the rule is testable without running any network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_NEAR = 0.5  # an unconfirmed face is "where the patient is" if its centre lies in the patient's box
# enlarged by this fraction of its size on every side


@dataclass(frozen=True)
class FailClosed:
    blank: np.ndarray  # (n_frames,) bool: frames written blank because the patient is unconfirmed
    bystanders: np.ndarray  # (n_frames,) int: unconfirmed faces not drawn (the frame is kept)


def _near(box: np.ndarray, ref: np.ndarray) -> bool:
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    w, h = ref[2] - ref[0], ref[3] - ref[1]
    return bool(
        ref[0] - _NEAR * w <= cx <= ref[2] + _NEAR * w and ref[1] - _NEAR * h <= cy <= ref[3] + _NEAR * h
    )


def decide(
    unconfirmed: Sequence[np.ndarray], patient_boxes: Mapping[int, np.ndarray], window: int
) -> FailClosed:
    """Blank and bystander counts per frame.

    unconfirmed: per frame, an (k, 4) array of boxes (x0, y0, x1, y1) of faces detected confidently
    but not confirmed by the mesh. patient_boxes: the patient's box in every frame where the
    patient's face was *confirmed* (not carried over from an earlier frame). window: how many frames
    away a confirmed patient box still says where the patient is (about a second of video).
    """
    n = len(unconfirmed)
    blank = np.zeros(n, dtype=bool)
    bystanders = np.zeros(n, dtype=np.int64)
    seen = np.array(sorted(patient_boxes), dtype=np.int64)
    for i, boxes in enumerate(unconfirmed):
        if len(boxes) == 0:
            continue
        if len(seen) == 0:  # no face confirmed anywhere: any unconfirmed face may be the patient
            blank[i] = True
            continue
        if i in patient_boxes:  # the patient is confirmed here: the others are bystanders
            bystanders[i] = len(boxes)
            continue
        pos = int(np.searchsorted(seen, i))
        nearest = [int(seen[p]) for p in (pos - 1, pos) if 0 <= p < len(seen)]
        near = [j for j in nearest if abs(j - i) <= window]
        patient_here = [b for b in boxes if any(_near(b, patient_boxes[j]) for j in near)]
        blank[i] = bool(patient_here)
        bystanders[i] = len(boxes) - len(patient_here)
    return FailClosed(blank=blank, bystanders=bystanders)
