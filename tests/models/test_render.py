"""The rasteriser puts a known mesh where it belongs, and the nearest surface wins."""

from __future__ import annotations

import numpy as np
import torch

from models.render import rasterize


def _coverage(verts: list[list[float]], tris: list[list[int]], h: int = 40, w: int = 50) -> np.ndarray:
    frags = rasterize(torch.tensor(verts), torch.tensor(tris), h, w)
    out = np.full(h * w, -1)
    out[frags.pixel.numpy()] = frags.triangle.numpy()
    return out.reshape(h, w)


def test_a_square_of_two_triangles_covers_exactly_its_pixels() -> None:
    square = [[10.0, 5.0, 0.0], [30.0, 5.0, 0.0], [30.0, 25.0, 0.0], [10.0, 25.0, 0.0]]
    cov = _coverage(square, [[0, 1, 2], [0, 2, 3]])
    ys, xs = np.nonzero(cov >= 0)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 30, 5, 25)
    assert (cov >= 0).sum() == 21 * 21


def test_the_nearer_triangle_hides_the_farther_one() -> None:
    far = [[0.0, 0.0, 5.0], [40.0, 0.0, 5.0], [0.0, 39.0, 5.0]]
    near = [[5.0, 5.0, 1.0], [20.0, 5.0, 1.0], [5.0, 20.0, 1.0]]
    cov = _coverage(far + near, [[0, 1, 2], [3, 4, 5]])
    assert cov[8, 8] == 1 and cov[30, 3] == 0
    # drawing order does not matter, depth does
    cov_swapped = _coverage(near + far, [[3, 4, 5], [0, 1, 2]])
    assert cov_swapped[8, 8] == 1


def test_triangles_outside_the_frame_are_clipped() -> None:
    cov = _coverage([[-30.0, -30.0, 0.0], [200.0, -30.0, 0.0], [-30.0, 200.0, 0.0]], [[0, 1, 2]])
    assert (cov == 0).all()
