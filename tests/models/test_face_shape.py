"""Every mask draws its own face shape below the eyes (FaceShape): the eyes, which carry the clinical
signal, stay exactly where the measurements put them; the chin and mouth move with the draw; and two
masks get two different shapes, so that a face shape cannot link them."""

from __future__ import annotations

import numpy as np
import torch

from models.avatar import FaceShape, drive_eyes, posed_vertices
from models.compose import LOWER_HEIGHT, LOWER_WIDTH, Appearance
from models.eyes import EyeState
from models.template import EYE_RING, LOWER_LID, UPPER_LID

_CHIN, _MOUTH_CORNERS, _NOSE_TIP = 152, (61, 291), 1


def _posed(shape: FaceShape, lower_lid: float = 0.6) -> torch.Tensor:
    """The template posed frontally at unit scale (template units); ``lower_lid`` is MRD2 in iris
    diameters (1.5 is as far down as the drive takes a lower lid)."""
    state = EyeState(
        width=np.full(2, 2.4),
        upper=np.full(2, 0.4),
        lower=np.full(2, lower_lid),
        iris_u=np.full(2, 0.5),
        iris_v=np.zeros(2),
        iris_diameter=np.ones(2),
    )
    dt = torch.float64
    return posed_vertices(
        torch.zeros(468, 3, dtype=dt),
        drive_eyes(state),
        torch.eye(3, dtype=dt),
        torch.tensor(1.0, dtype=dt),
        torch.zeros(3, dtype=dt),
        shape,
    )


def test_the_face_shape_leaves_the_eyes_and_eyeballs_where_they_were() -> None:
    widest = FaceShape(lower_height=0.78, lower_width=1.08)
    canonical, reshaped = _posed(FaceShape(), lower_lid=1.5), _posed(widest, lower_lid=1.5)
    eyes = sorted({i for ring in (*EYE_RING, *UPPER_LID, *LOWER_LID) for i in ring})
    assert torch.equal(reshaped[eyes], canonical[eyes])
    assert torch.equal(reshaped[468:476], canonical[468:476])  # the eye plates the eyeball is drawn on


def test_a_shorter_lower_face_raises_the_chin_and_mouth_towards_the_eyes() -> None:
    canonical, shorter = _posed(FaceShape()), _posed(FaceShape(lower_height=0.8))
    eye_line = float(canonical[list(EYE_RING[0]), 1].mean())
    for point in (_CHIN, *_MOUTH_CORNERS, _NOSE_TIP):
        drop_before = float(canonical[point, 1]) - eye_line
        drop_after = float(shorter[point, 1]) - eye_line
        assert drop_after < 0.95 * drop_before, point
    assert abs(float(shorter[_CHIN, 0]) - float(canonical[_CHIN, 0])) < 1e-9  # height only


def test_a_wider_jaw_moves_the_mouth_corners_apart() -> None:
    canonical, wider = _posed(FaceShape()), _posed(FaceShape(lower_width=1.08))
    before = float(canonical[_MOUTH_CORNERS[1], 0] - canonical[_MOUTH_CORNERS[0], 0])
    after = float(wider[_MOUTH_CORNERS[1], 0] - wider[_MOUTH_CORNERS[0], 0])
    assert after > 1.04 * before


def test_every_mask_draws_its_own_shape_within_the_documented_ranges() -> None:
    shapes = [Appearance.random(np.random.default_rng(seed)).shape for seed in range(20)]
    assert len(set(shapes)) == len(shapes)
    for shape in shapes:
        assert LOWER_HEIGHT[0] <= shape.lower_height <= LOWER_HEIGHT[1]
        assert LOWER_WIDTH[0] <= shape.lower_width <= LOWER_WIDTH[1]
