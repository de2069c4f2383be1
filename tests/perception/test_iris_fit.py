"""The iris centre fitted to the picture (models/perception/iris_fit.py): it finds the dark disc where it
is drawn, moves the iris only along the eye, and leaves an eye it cannot see alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from perception_support import load_rgb

from models.perception import FacePerception
from models.perception.iris_fit import fit_irises

SKIN, SCLERA, IRIS = 130.0, 215.0, 55.0
RADIUS = 11.0


def _ring(
    centre: np.ndarray, half_width: float, height: float, tilt: float, outer_first_left: bool
) -> np.ndarray:
    """A 16-point eye ring (0 outer corner, 1-7 lower lid, 8 inner corner, 9-15 upper lid, both lids
    outer to inner) of an almond opening, tilted by ``tilt`` radians."""
    t = np.linspace(-1.0, 1.0, 9)[1:-1]  # the seven lid points between the corners
    side = -1.0 if outer_first_left else 1.0  # the outer corner's side of the image
    xs = side * np.concatenate([[1.0], -t, [-1.0]]) * half_width
    lower = np.stack([xs[1:8], height * (1 - t**2)], axis=-1)
    upper = np.stack([xs[1:8], -height * (1 - t**2)], axis=-1)
    local = np.concatenate([[[xs[0], 0.0]], lower, [[xs[8], 0.0]], upper])
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    return (local @ rot.T + centre).astype(np.float32)


def _inside(ring: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    poly = ring[[0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9]]
    inside = np.zeros(xx.shape, bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        straddles = (ay > yy) != (by > yy)
        x_cross = ax + (yy - ay) * (bx - ax) / (by - ay if by != ay else 1.0)
        inside ^= straddles & (xx < x_cross)
    return inside


def _eye_frame(ring: np.ndarray, iris_at: np.ndarray, size: int = 160) -> torch.Tensor:
    """(1, 3, H, W) picture of skin, the opening's sclera and a dark iris disc (pixel centres at +0.5)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = np.full((size, size), SKIN)
    opening = _inside(ring, xx, yy)
    img[opening] = SCLERA
    img[opening & ((xx - iris_at[0]) ** 2 + (yy - iris_at[1]) ** 2 <= RADIUS**2)] = IRIS
    return torch.from_numpy(img).float().expand(1, 3, size, size).clone()


def _network_iris(centre: np.ndarray) -> torch.Tensor:
    """(1, 5, 3) iris points as a network gives them: the centre, then four boundary points."""
    offsets = np.array([[0, 0], [RADIUS, 0], [0, -RADIUS], [-RADIUS, 0], [0, RADIUS]], np.float32)
    pts = np.concatenate([centre + offsets, np.zeros((5, 1), np.float32)], axis=1)
    return torch.from_numpy(pts.astype(np.float32))[None]


@pytest.mark.parametrize(
    ("tilt", "outer_first_left"), [(0.0, True), (0.0, False), (0.35, True), (-0.35, False)]
)
def test_the_centre_moves_to_the_drawn_iris_along_the_eye(tilt: float, outer_first_left: bool) -> None:
    centre = np.array([80.0, 80.0], np.float32)
    ring = _ring(centre, half_width=30.0, height=13.0, tilt=tilt, outer_first_left=outer_first_left)
    along = np.array([math.cos(tilt), math.sin(tilt)], np.float32)
    across = np.array([-math.sin(tilt), math.cos(tilt)], np.float32)
    truth = centre + 6.0 * along
    network = centre + 1.5 * along + 1.0 * across  # short along the eye, a little off across it
    frame = _eye_frame(ring, truth)
    fitted = fit_irises(frame, torch.from_numpy(ring)[None], _network_iris(network))[0].numpy()
    moved = fitted[0, :2] - network
    assert moved @ along == pytest.approx(4.5, abs=0.35)  # to the drawn disc, along the eye
    assert moved @ across == pytest.approx(0.0, abs=1e-4)  # the height across the eye stays the network's


def test_every_iris_point_moves_with_the_centre() -> None:
    centre = np.array([80.0, 80.0], np.float32)
    ring = _ring(centre, 30.0, 13.0, 0.0, True)
    network = _network_iris(centre)
    fitted = fit_irises(_eye_frame(ring, centre + [5.0, 0.0]), torch.from_numpy(ring)[None], network)[0]
    shift = fitted - network[0]
    assert torch.allclose(shift, shift[0].expand(5, 3), atol=1e-5)
    assert float(shift[0, 0]) > 4.0


def test_a_shut_eye_keeps_the_network_centre() -> None:
    centre = np.array([80.0, 80.0], np.float32)
    shut = _ring(centre, 30.0, 0.5, 0.0, True)  # the lids meet: no disc fits between them
    network = _network_iris(centre + [3.0, 0.0])
    frame = _eye_frame(_ring(centre, 30.0, 13.0, 0.0, True), centre)  # an iris the lids now hide
    fitted = fit_irises(frame, torch.from_numpy(shut)[None], network)
    assert torch.equal(fitted, network)


def test_a_flat_opening_keeps_the_network_centre() -> None:
    """No iris to see (a blanked or blurred-away eye): nothing to fit to."""
    centre = np.array([80.0, 80.0], np.float32)
    ring = _ring(centre, 30.0, 13.0, 0.0, True)
    frame = torch.full((1, 3, 160, 160), SCLERA)
    network = _network_iris(centre + [3.0, 0.0])
    assert torch.equal(fit_irises(frame, torch.from_numpy(ring)[None], network), network)


def test_perception_with_the_fit_moves_only_the_iris(shared_data: Path) -> None:
    img = load_rgb(shared_data / "faces/angelina_jolie/1.jpg")
    fitted = FacePerception(device="cpu", fit_iris=True)([img])[0][0]
    own = FacePerception(device="cpu", fit_iris=False)([img])[0][0]
    np.testing.assert_array_equal(fitted.mesh, own.mesh)
    np.testing.assert_array_equal(fitted.eye_contours, own.eye_contours)
    shift = fitted.iris[:, :, :2] - own.iris[:, :, :2]  # (2 eyes, 5 points, xy)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1], shift.shape), atol=1e-3)
    diameter = np.linalg.norm(own.iris[:, 1, :2] - own.iris[:, 3, :2], axis=-1)
    assert (np.linalg.norm(shift[:, 0], axis=-1) <= 0.5 * diameter + 1e-3).all()  # within the search
