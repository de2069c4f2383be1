"""The rigid fit recovers head pose: the numbers that drive the mask's pose and the head-pose metrics."""

from __future__ import annotations

import numpy as np
import torch

from models.geometry import euler_to_rotation, fit_similarity, rotation_to_euler
from models.template import RIGID, load_canonical_face


def test_pose_fit_recovers_a_known_rotation_scale_and_translation() -> None:
    template = torch.tensor(load_canonical_face().vertices, dtype=torch.float64)
    angles = torch.tensor([[25.0, -12.0, 8.0], [-40.0, 20.0, -15.0]], dtype=torch.float64)
    rot = euler_to_rotation(angles)
    landmarks = 3.2 * torch.einsum("bij,nj->bni", rot, template) + torch.tensor([320.0, 240.0, 5.0])
    noise = torch.randn(landmarks.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fitted_rot, scale, trans = fit_similarity(
        template[list(RIGID)], (landmarks + 0.5 * noise)[:, list(RIGID)]
    )
    assert np.allclose(rotation_to_euler(fitted_rot).numpy(), angles.numpy(), atol=1.0)
    assert np.allclose(scale.numpy(), 3.2, rtol=0.02)
    assert np.allclose(trans[:, :2].numpy(), [[320.0, 240.0]] * 2, atol=3.0)


def test_fit_never_returns_a_mirror_image() -> None:
    template = torch.tensor(load_canonical_face().vertices, dtype=torch.float64)
    mirrored = template * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    rot, _, _ = fit_similarity(template, mirrored.unsqueeze(0))
    assert torch.linalg.det(rot[0]).item() > 0.99


def test_euler_angles_round_trip() -> None:
    angles = torch.tensor([[10.0, 20.0, -30.0], [-5.0, -60.0, 45.0]], dtype=torch.float64)
    assert torch.allclose(rotation_to_euler(euler_to_rotation(angles)), angles, atol=1e-6)


def test_the_signs_of_the_exported_head_pose() -> None:
    """What a reader of `head_pose_deg` is told: positive yaw turns the face to the viewer's left (the
    subject's right), positive pitch lowers the chin, positive roll tilts the face clockwise on screen."""
    face = torch.tensor(load_canonical_face().vertices, dtype=torch.float64)
    nose, right_outer = 1, 33  # nose tip; the subject's right eye corner (image left)

    def posed(yaw: float, pitch: float, roll: float) -> torch.Tensor:
        return face @ euler_to_rotation(torch.tensor([yaw, pitch, roll], dtype=torch.float64)).T

    assert posed(20, 0, 0)[nose, 0] < face[nose, 0]  # x runs to the viewer's right
    assert posed(0, 20, 0)[nose, 1] > face[nose, 1]  # y runs down
    assert posed(0, 0, 20)[right_outer, 1] < face[right_outer, 1]  # the image-left side rises: clockwise
