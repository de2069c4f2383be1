"""Rigid geometry: similarity fit of the template to landmarks, and head-pose angles.

Batched torch code so the same functions run on CPU and CUDA.
"""

from __future__ import annotations

import math

import torch


def fit_similarity(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform ``dst ~ s * R @ src + t`` (Umeyama 1991), batched.

    src, dst: (B, N, 3); weights: (N,) or (B, N). Returns R (B, 3, 3) with det +1, s (B,), t (B, 3).
    A proper rotation is enforced so a mirrored fit can never flip the rendered face.
    """
    if src.dim() == 2:
        src = src.expand(dst.shape[0], -1, -1)
    b, n, _ = dst.shape
    w = torch.ones(b, n, dtype=dst.dtype, device=dst.device) if weights is None else weights
    if w.dim() == 1:
        w = w.expand(b, -1)
    w = w / w.sum(dim=1, keepdim=True)
    mu_s = (w.unsqueeze(-1) * src).sum(1)
    mu_d = (w.unsqueeze(-1) * dst).sum(1)
    xs = src - mu_s.unsqueeze(1)
    xd = dst - mu_d.unsqueeze(1)
    cov = torch.einsum("bn,bni,bnj->bij", w, xd, xs)
    u, sig, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))
    corr = torch.ones(b, 3, dtype=dst.dtype, device=dst.device)
    corr[:, 2] = d
    rot = u @ torch.diag_embed(corr) @ vh
    var_s = (w * (xs**2).sum(-1)).sum(1)
    scale = (sig * corr).sum(1) / var_s.clamp_min(1e-12)
    t = mu_d - scale.unsqueeze(1) * torch.einsum("bij,bj->bi", rot, mu_s)
    return rot, scale, t


def rotation_to_euler(rot: torch.Tensor) -> torch.Tensor:
    """Head yaw, pitch, roll in degrees from rotations in image axes (x right, y down, z away).

    R = Rz(roll) @ Ry(yaw) @ Rx(pitch). Positive yaw turns the face towards the viewer's left (the
    subject's right), positive pitch lowers the chin, positive roll tilts clockwise on screen
    (tests/models/test_geometry.py; checked on shared frames: the audience of hamilton_white_house
    looking to the image's left reads +53 deg of yaw, the child of livep_d11 looking up -15 deg of pitch).
    """
    yaw = torch.asin((-rot[..., 2, 0]).clamp(-1.0, 1.0))
    pitch = torch.atan2(rot[..., 2, 1], rot[..., 2, 2])
    roll = torch.atan2(rot[..., 1, 0], rot[..., 0, 0])
    return torch.stack([yaw, pitch, roll], dim=-1) * (180.0 / math.pi)


def euler_to_rotation(angles_deg: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotation_to_euler`: (..., 3) yaw, pitch, roll in degrees -> (..., 3, 3)."""
    yaw, pitch, roll = (angles_deg * (math.pi / 180.0)).unbind(-1)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*yaw.shape, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*yaw.shape, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*yaw.shape, 3, 3)
    return rz @ ry @ rx
