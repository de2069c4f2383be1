"""Eye measurements: a synthetic eye with known lid heights and iris position is measured right, and
the mask's template eye is driven to the same numbers."""

from __future__ import annotations

import numpy as np
import torch

from models.avatar import SHUT_LINE_FROM, drive_eyes, eye_closure, lift_shut_line, template_rig
from models.eyes import (
    along_slid_lids,
    iris_along_eye_seen,
    measure_eyes,
    to_mm,
)
from models.geometry import euler_to_rotation
from models.template import EYE_INNER, EYE_OUTER, LOWER_LID, UPPER_LID, load_canonical_face


def _synthetic_face(upper: float, lower: float, iris_u: float, iris_v: float, diameter: float = 1.0):
    """Template mesh with each eye's lids set to ``upper``/``lower`` (heights above/below the iris
    centre, in iris diameters) along a flat lid line, and a round iris of ``diameter``."""
    pts = load_canonical_face().vertices.astype(np.float64).copy()
    iris = np.zeros((2, 5, 3))
    for e in range(2):
        outer, inner = pts[EYE_OUTER[e], :2], pts[EYE_INNER[e], :2]
        u = (inner - outer) / np.linalg.norm(inner - outer)
        v = np.array([0.0, -1.0]) - (np.array([0.0, -1.0]) @ u) * u
        v /= np.linalg.norm(v)
        width = np.linalg.norm(inner - outer)
        centre = outer + iris_u * width * u + iris_v * diameter * v
        for lid, h in ((UPPER_LID[e], upper), (LOWER_LID[e], -lower)):
            for k, idx in enumerate(lid):
                along = (k + 1) / (len(lid) + 1)
                pts[idx, :2] = outer + along * width * u + (iris_v * diameter + h * diameter) * v
        iris[e, 0, :2] = centre
        for k, ang in enumerate((0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi)):
            iris[e, k + 1, :2] = centre + 0.5 * diameter * (np.cos(ang) * u + np.sin(ang) * v)
    return pts, iris


def test_a_synthetic_eye_with_known_aperture_is_measured_in_iris_units_and_mm() -> None:
    pts, iris = _synthetic_face(upper=0.4, lower=0.45, iris_u=0.5, iris_v=0.0, diameter=0.9)
    state = measure_eyes(pts, iris)
    assert np.allclose(state.upper, 0.4, atol=1e-6)
    assert np.allclose(state.lower, 0.45, atol=1e-6)
    assert np.allclose(to_mm(state.aperture), 0.85 * 11.7, atol=1e-4)
    assert np.allclose(state.iris_u, 0.5, atol=1e-6)


def test_the_measurement_does_not_depend_on_the_patients_eye_size() -> None:
    small = measure_eyes(*_synthetic_face(0.3, 0.5, 0.4, 0.1, diameter=0.8))
    large = measure_eyes(*_synthetic_face(0.3, 0.5, 0.4, 0.1, diameter=1.3))
    assert np.allclose(small.upper, large.upper) and np.allclose(small.lower, large.lower)
    assert np.allclose(small.iris_u, large.iris_u) and np.allclose(small.iris_v, large.iris_v)


def test_the_template_eye_is_driven_to_the_measured_lid_heights_where_they_were_read() -> None:
    """The iris is drawn at its true place along the eye; the lid heights were read at the iris's place
    on the lid curves as the networks put them, which slide with their corners (eyes.along_slid_lids),
    so the drawn lids match them there."""
    pts, iris = _synthetic_face(upper=0.25, lower=0.5, iris_u=0.35, iris_v=0.05)
    state = measure_eyes(pts, iris)
    drive = drive_eyes(state)
    rig = template_rig()
    d = rig.iris_diameter
    read_at = float(along_slid_lids(np.asarray(0.35)))
    assert abs(read_at - 0.35) > 0.03  # the test tells the two places apart
    for e in range(2):
        u_r, v_r = drive.iris_uv[e]
        assert np.isclose(u_r / rig.eye_width[e], 0.35, atol=1e-6)
        u_lids = read_at * rig.eye_width[e]
        order = np.argsort(rig.lid_u[e, 0])
        up = np.interp(u_lids, rig.lid_u[e, 0][order], drive.lid_v[e, 0][order])
        order = np.argsort(rig.lid_u[e, 1])
        lo = np.interp(u_lids, rig.lid_u[e, 1][order], drive.lid_v[e, 1][order])
        assert np.isclose((up - v_r) / d, 0.25, atol=1e-6)
        assert np.isclose((v_r - lo) / d, 0.5, atol=1e-6)


def test_a_closed_eye_renders_with_the_lids_meeting_not_crossing() -> None:
    pts, iris = _synthetic_face(upper=-0.3, lower=-0.2, iris_u=0.5, iris_v=0.0)
    drive = drive_eyes(measure_eyes(pts, iris))
    assert (drive.lid_v[:, 0] >= drive.lid_v[:, 1]).all()


def test_a_shut_eye_is_drawn_shut_along_its_corners_line_not_in_the_open_lower_lids_curve() -> None:
    """Drawn shut in the open lower lid's curve, the closed line sagged and a reader took the sag for
    an opening (models/README.md, "The shut line")."""
    pts, iris = _synthetic_face(upper=-0.2, lower=0.2, iris_u=0.5, iris_v=0.1)  # met 0.1 below the corners
    drive = drive_eyes(measure_eyes(pts, iris))
    width = template_rig().eye_width
    for e in range(2):
        assert np.abs(drive.lid_v[e]).max() < 0.02 * width[e]  # drawn in the lower lid's curve: 0.04


def test_lifting_a_closing_eyes_lids_keeps_the_aperture_they_show_at_every_point() -> None:
    rig = template_rig()
    lid_v = rig.lid_v.copy()
    lid_v[0, 0] = lid_v[0, 1] + 0.1 * (rig.lid_v[0, 0] - rig.lid_v[0, 1])  # eye 0 nine-tenths shut
    lifted = lift_shut_line(lid_v)
    assert eye_closure(lid_v)[0] > SHUT_LINE_FROM
    assert not np.allclose(lifted[0], lid_v[0])  # the test moves the lids
    assert np.allclose(lifted[0, 0] - lifted[0, 1], lid_v[0, 0] - lid_v[0, 1])
    assert np.array_equal(lifted[1], lid_v[1])  # the open eye is as driven


def test_on_a_turned_head_the_iris_is_read_where_the_camera_sees_it_between_the_corners() -> None:
    """The iris lies in front of the corner line, so a head turn shifts it against the corners in the
    picture, to the side the nose tip goes: a reader of the picture sees that, and so must the mask."""
    pts, iris = _synthetic_face(upper=0.4, lower=0.45, iris_u=0.5, iris_v=0.0)
    corners_z = pts[list(EYE_OUTER) + list(EYE_INNER), 2].mean()
    iris[..., 2] = corners_z - 0.6  # 6 mm in front of the corner line (image axes: z away from the camera)
    assert np.allclose(iris_along_eye_seen(pts, iris), 0.5)

    rot = euler_to_rotation(torch.tensor([25.0, 0.0, 0.0], dtype=torch.float64)).numpy()
    turned, turned_iris = pts @ rot.T, iris @ rot.T
    nose_side = np.sign(turned[1, 0] - pts[1, 0])
    seen = iris_along_eye_seen(turned, turned_iris)
    towards_image_right = np.array([seen[0] - 0.5, 0.5 - seen[1]])  # u runs outer -> inner: mirrored for OS
    assert np.all(np.sign(towards_image_right) == nose_side)
    assert np.all(np.abs(towards_image_right) > 0.03)  # about a tenth of the eye's width at 25 degrees
