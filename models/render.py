"""A small z-buffer triangle rasteriser in torch: the same code on CPU and CUDA.

Each triangle visits only the pixels of its own bounding box (generated with ``repeat_interleave``),
so the cost follows the face's area in pixels, not frame size x triangle count. The nearest triangle
per pixel wins through one ``scatter_reduce(amin)`` on a packed (depth, triangle) integer key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_TRI_BITS = 16  # up to 65,535 triangles per call (several faces of 900 triangles each)
_DEPTH_STEPS = 64.0  # depth quantisation: 1/64 pixel


@dataclass
class Fragments:
    """Per covered pixel: its flat index in the frame, the winning triangle and barycentric weights."""

    pixel: torch.Tensor  # (P,) long, y * width + x
    triangle: torch.Tensor  # (P,) long
    bary: torch.Tensor  # (P, 3) float


def rasterize(verts: torch.Tensor, tris: torch.Tensor, height: int, width: int) -> Fragments:
    """Rasterise triangles given in pixel coordinates (x, y) with depth z (smaller = nearer).

    verts: (V, 3) float; tris: (F, 3) long. Pixel centres are at integer coordinates.
    """
    device = verts.device
    if tris.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Fragments(empty, empty, torch.zeros(0, 3, dtype=verts.dtype, device=device))
    if tris.shape[0] >= 1 << _TRI_BITS:
        raise ValueError("too many triangles for one rasterisation call")
    tv = verts[tris]  # (F, 3, 3)
    x, y, z = tv[..., 0], tv[..., 1], tv[..., 2]
    x0 = x.min(1).values.ceil().clamp(0, width - 1).long()
    x1 = x.max(1).values.floor().clamp(-1, width - 1).long()
    y0 = y.min(1).values.ceil().clamp(0, height - 1).long()
    y1 = y.max(1).values.floor().clamp(-1, height - 1).long()
    bw = (x1 - x0 + 1).clamp_min(0)
    bh = (y1 - y0 + 1).clamp_min(0)
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = area2.abs() > 1e-9
    bw = torch.where(keep, bw, torch.zeros_like(bw))
    counts = bw * bh
    total = int(counts.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Fragments(empty, empty, torch.zeros(0, 3, dtype=verts.dtype, device=device))
    tri_of = torch.repeat_interleave(torch.arange(tris.shape[0], device=device), counts, output_size=total)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=device) - start[tri_of]
    bw_t = bw[tri_of]
    px = x0[tri_of] + local % bw_t
    py = y0[tri_of] + torch.div(local, bw_t, rounding_mode="floor")
    bary = _barycentric(x[tri_of], y[tri_of], area2[tri_of], px.to(verts.dtype), py.to(verts.dtype))
    inside = (bary >= -1e-6).all(1)
    tri_of, px, py, bary = tri_of[inside], px[inside], py[inside], bary[inside]
    depth = (bary * z[tri_of]).sum(1)
    pixel = py * width + px
    # Pack (depth, triangle) into one int64 so a single amin finds the nearest triangle per pixel.
    qdepth = ((depth - depth.min()) * _DEPTH_STEPS).round().long()
    key = (qdepth << _TRI_BITS) | tri_of
    best = torch.full((height * width,), torch.iinfo(torch.long).max, dtype=torch.long, device=device)
    best.scatter_reduce_(0, pixel, key, reduce="amin")
    won = best[pixel] == key
    return Fragments(pixel[won], tri_of[won], bary[won])


def _barycentric(
    x: torch.Tensor, y: torch.Tensor, area2: torch.Tensor, px: torch.Tensor, py: torch.Tensor
) -> torch.Tensor:
    """Barycentric weights of points (px, py) in triangles with corner coordinates x, y: (N, 3)."""
    w0 = (x[:, 1] - px) * (y[:, 2] - py) - (x[:, 2] - px) * (y[:, 1] - py)
    w1 = (x[:, 2] - px) * (y[:, 0] - py) - (x[:, 0] - px) * (y[:, 2] - py)
    w2 = (x[:, 0] - px) * (y[:, 1] - py) - (x[:, 1] - px) * (y[:, 0] - py)
    return torch.stack([w0, w1, w2], 1) / area2.unsqueeze(1)


def interpolate(frags: Fragments, tris: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes (V, C) at the fragments: (P, C)."""
    corner = attrs[tris[frags.triangle]]  # (P, 3, C)
    return (frags.bary.unsqueeze(-1) * corner).sum(1)


def vertex_normals(verts: torch.Tensor, tris: torch.Tensor) -> torch.Tensor:
    """Area-weighted vertex normals, oriented towards the camera (negative z)."""
    tv = verts[tris]
    fn = torch.linalg.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
    vn = torch.zeros_like(verts).index_add_(0, tris.reshape(-1), fn.repeat_interleave(3, 0))
    vn = vn / vn.norm(dim=1, keepdim=True).clamp_min(1e-9)
    flip = torch.where(vn[:, 2:3] > 0, -1.0, 1.0).to(vn.dtype)
    return vn * flip
