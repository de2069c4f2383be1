"""Typed builder: a committed JSON layer list (models/weights/<net>.json) -> an NCHW ``nn.Module``.

Why a builder instead of hand-written classes: the five MediaPipe networks (BlazeFace short range,
the FPN-style full-range detector, the face mesh, the attention mesh and the two-branch iris net) are
all made of the same handful of TFLite layers (plus, in the attention mesh, three MediaPipe custom
operators that crop its eye and lip regions out of a feature map and map their points back).
Describing them once as data keeps the conversion exact (the layer
list is generated from the TFLite graph by tools/convert_tflite.py, so hand transcription errors are
impossible) while the PyTorch side stays small, typed and readable: each layer kind is one module.

TFLite semantics reproduced here:
- SAME padding is asymmetric (the extra pixel goes bottom/right) and is stored explicitly per conv.
- Residual channel growth uses zero channel padding (``ChannelPad``).
- DEPTH_TO_SPACE uses TensorFlow's DCR channel order, not ``pixel_shuffle``'s CRD order.
- RESHAPE operates on NHWC memory order, so heads are permuted to NHWC before flattening.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .weights import WEIGHTS_DIR, load_tensors, verified_path


@dataclass(frozen=True)
class NetSpec:
    """The parsed architecture file of one network."""

    name: str
    input_shape: tuple[int, int, int]  # H, W, C as in TFLite
    output_values: tuple[int, ...]  # value ids of the outputs, in TFLite output order
    output_shapes: tuple[tuple[int, ...], ...]  # per-sample shapes of the outputs
    nodes: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, path: Path) -> NetSpec:
        raw = json.loads(path.read_text())
        return cls(
            name=raw["name"],
            input_shape=tuple(raw["input_shape"]),
            output_values=tuple(o["value"] for o in raw["outputs"]),
            output_shapes=tuple(tuple(o["shape"]) for o in raw["outputs"]),
            nodes=tuple(raw["nodes"]),
        )


def _activation(kind: str) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "relu":
        return nn.ReLU()
    if kind == "relu6":
        return nn.ReLU6()
    raise ValueError(f"unknown fused activation {kind!r}")


class Layer(nn.Module):
    """A graph node: a module plus the ids of the values it reads."""

    inputs: tuple[int, ...]

    def __init__(self, inputs: tuple[int, ...]) -> None:
        super().__init__()
        self.inputs = inputs


class Conv(Layer):
    """CONV_2D / DEPTHWISE_CONV_2D with TFLite padding (symmetric part inside the conv, the
    asymmetric SAME remainder as an explicit zero pad) and fused activation."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        top, bottom, left, right = spec["pad"]
        sym_h, sym_w = min(top, bottom), min(left, right)
        extra = (left - sym_w, right - sym_w, top - sym_h, bottom - sym_h)
        self.extra_pad: tuple[int, int, int, int] | None = extra if any(extra) else None
        self.conv = nn.Conv2d(
            spec["in_ch"],
            spec["out_ch"],
            kernel_size=tuple(spec["kernel"]),
            stride=tuple(spec["stride"]),
            padding=(sym_h, sym_w),
            groups=spec["groups"],
            bias=True,
        )
        self.act = _activation(spec["act"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        return self.act(self.conv(x))


class PReLU(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.prelu = nn.PReLU(spec["channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x)


class ReLU(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class Add(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(tuple(spec["inputs"]))
        self.act = _activation(spec["act"])

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.act(a + b)


class ChannelPad(Layer):
    """Zero channels appended so a residual branch matches a wider block output (BlazeBlock)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.extra = int(spec["extra"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class MaxPool(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.pool = nn.MaxPool2d(tuple(spec["kernel"]), tuple(spec["stride"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class ResizeBilinear(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        if spec["align_corners"] or not spec["half_pixel_centers"]:
            raise NotImplementedError("only half-pixel-centre bilinear resize is used by these models")
        self.size = (int(spec["size"][0]), int(spec["size"][1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


class DepthToSpace(Layer):
    """TensorFlow DEPTH_TO_SPACE (DCR order: channel index = (dy * b + dx) * C_out + c)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.block = int(spec["block"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (b * b), h * b, w * b)


class Reshape(Layer):
    """TFLite RESHAPE: flatten in NHWC order, keep the batch dimension."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.shape = tuple(int(s) for s in spec["shape"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape((x.shape[0], *self.shape))


class Concat(Layer):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(tuple(spec["inputs"]))
        self.axis = int(spec["axis"])

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)


class MulConst(Layer):
    """MUL of a landmark value (N, K, 3) or a matrix (N, 4, 4) by a broadcast constant."""

    constant: torch.Tensor

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.register_buffer("constant", torch.zeros(spec["shape"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.constant


# MediaPipe's custom operators of the attention mesh (version 2 each), written from their
# Apache-2.0 reference kernels in mediapipe/util/tflite/operations. Batched: one matrix per sample.


def _affine(
    cos: torch.Tensor,
    sin: torch.Tensor,
    sx: torch.Tensor,
    sy: torch.Tensor,
    tx: torch.Tensor,
    ty: torch.Tensor,
) -> torch.Tensor:
    """(N, 4, 4) matrices [[cos*sx, -sin*sy, 0, tx], [sin*sx, cos*sy, 0, ty], [0, 0, 1, 0], [0, 0, 0, 1]]."""
    zero, one = torch.zeros_like(cos), torch.ones_like(cos)
    rows = [
        [cos * sx, -sin * sy, zero, tx],
        [sin * sx, cos * sy, zero, ty],
        [zero, zero, one, zero],
        [zero, zero, zero, one],
    ]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


class LandmarksToMatrix(Layer):
    """Landmarks2TransformMatrix v2: the (N, 4, 4) matrix mapping an ``output_size`` crop's pixel
    (x, y, 0, 1) into the coordinates of the landmarks, for a crop around the ``subset`` points,
    rotated so the two ``rotation_points`` lie level (plus ``target_rotation``) and ``scale`` times
    their rotated bounding box."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__((spec["input"],))
        self.subset = tuple(int(i) for i in spec["subset"])
        self.left, self.right = (int(i) for i in spec["rotation_points"])
        self.target_rotation = float(spec["target_rotation"])
        self.out_h, self.out_w = (int(v) for v in spec["output_size"])
        self.scale_x, self.scale_y = (float(v) for v in spec["scale"])

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        xy = landmarks[..., :2]
        d = xy[:, self.right] - xy[:, self.left]
        r = self.target_rotation - torch.atan2(d[:, 1], d[:, 0])  # (N,)
        cos, sin = torch.cos(r)[:, None], torch.sin(r)[:, None]
        pts = xy[:, list(self.subset)]
        rx = cos * pts[..., 0] - sin * pts[..., 1]
        ry = sin * pts[..., 0] + cos * pts[..., 1]
        x_min, x_max = rx.amin(dim=1), rx.amax(dim=1)
        y_min, y_max = ry.amin(dim=1), ry.amax(dim=1)
        mid_x, mid_y = (x_min + x_max) / 2, (y_min + y_max) / 2
        c, s = cos[:, 0], sin[:, 0]
        centre_x = c * mid_x + s * mid_y  # the rotated box's middle turned back (rotation by -r)
        centre_y = -s * mid_x + c * mid_y
        sx = self.scale_x * (x_max - x_min) / self.out_w
        sy = self.scale_y * (y_max - y_min) / self.out_h
        # shift(centre) @ rotate(-r) @ scale(sx, sy) @ shift(-out / 2)
        hw, hh = self.out_w / 2.0, self.out_h / 2.0
        tx = centre_x - (c * sx * hw + s * sy * hh)
        ty = centre_y - (-s * sx * hw + c * sy * hh)
        return _affine(c, -s, sx, sy, tx, ty)


class TransformTensor(Layer):
    """TransformTensorBilinear v2: sample an (oh, ow) crop of an NCHW feature map through a
    per-sample matrix from output pixel centres; a crop pixel whose source lies outside the map's
    pixel-centre extent is 0 (the reference kernel's out-of-bound rule), otherwise bilinear."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(tuple(spec["inputs"]))
        self.out_h, self.out_w = (int(v) for v in spec["output_size"])

    def forward(self, features: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        ys, xs = torch.meshgrid(
            torch.arange(self.out_h, dtype=features.dtype, device=features.device) + 0.5,
            torch.arange(self.out_w, dtype=features.dtype, device=features.device) + 0.5,
            indexing="ij",
        )
        m = matrix[:, :2, :]  # (N, 2, 4); z = 0 and w = 1 for every crop pixel
        src_x = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 3, None, None] - 0.5
        src_y = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 3, None, None] - 0.5
        inside = (src_x >= 0) & (src_x <= w - 1) & (src_y >= 0) & (src_y <= h - 1)
        grid = torch.stack((src_x / (w - 1) * 2 - 1, src_y / (h - 1) * 2 - 1), dim=-1)
        out = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out * inside[:, None].to(out.dtype)


class TransformLandmarks(Layer):
    """TransformLandmarks v2 for 2-D landmarks: (N, K, 2) points through the first two rows of a
    per-sample (N, 4, 4) matrix (z = 0, w = 1)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(tuple(spec["inputs"]))

    def forward(self, landmarks: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        linear = matrix[:, :2, :2]
        shift = matrix[:, :2, 3]
        return landmarks @ linear.transpose(1, 2) + shift[:, None, :]


LAYERS: dict[str, Callable[[dict[str, Any]], Layer]] = {
    "conv": Conv,
    "prelu": PReLU,
    "relu": ReLU,
    "add": Add,
    "channel_pad": ChannelPad,
    "maxpool": MaxPool,
    "resize_bilinear": ResizeBilinear,
    "depth_to_space": DepthToSpace,
    "reshape": Reshape,
    "concat": Concat,
    "mul_const": MulConst,
    "landmarks_to_matrix": LandmarksToMatrix,
    "transform_tensor": TransformTensor,
    "transform_landmarks": TransformLandmarks,
}


class GraphNet(nn.Module):
    """Runs the layers in their (topological) file order; value 0 is the input, value k the output
    of layer k-1. Values that no later layer reads are dropped as soon as possible to keep peak
    memory low on large batches.

    Input: NCHW float32, already normalised as the TFLite model expects. Output: tuple of tensors
    shaped (N, *tflite_output_shape[1:]) in TFLite output order."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleDict({node["name"]: LAYERS[node["op"]](node) for node in spec.nodes})
        self._order: list[tuple[Layer, tuple[int, ...]]] = [
            (layer, layer.inputs) for layer in self.layers.values() if isinstance(layer, Layer)
        ]
        last_use: dict[int, int] = {}
        for k, (_, ins) in enumerate(self._order):
            for v in ins:
                last_use[v] = k
        keep = set(spec.output_values)
        self._free_after: list[tuple[int, ...]] = [
            tuple(v for v, k2 in last_use.items() if k2 == k and v not in keep)
            for k in range(len(self._order))
        ]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_shape[0], self.spec.input_shape[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # channels_last: oneDNN's (CPU) and cuDNN's fast depthwise / pointwise kernels want NHWC
        # memory; measured ~2x faster than NCHW for these nets on CPU.
        values: dict[int, torch.Tensor] = {0: x.contiguous(memory_format=torch.channels_last)}
        for k, (layer, ins) in enumerate(self._order):
            values[k + 1] = layer(*[values[v] for v in ins])
            for v in self._free_after[k]:
                del values[v]
        outs = []
        for v, shape in zip(self.spec.output_values, self.spec.output_shapes, strict=True):
            y = values[v]
            if y.dim() == 4:  # a conv output: TFLite's shape is NHWC
                y = y.permute(0, 2, 3, 1)
            outs.append(y.reshape((y.shape[0], *shape)))
        return tuple(outs)


def _state_key(key: str) -> str:
    """safetensors key -> module path: ``conv12.weight`` -> ``layers.conv12.conv.weight``,
    ``prelu3.weight`` -> ``layers.prelu3.prelu.weight``, ``mul_const0.constant`` -> itself under
    ``layers.``."""
    node, param = key.split(".")
    if node.startswith("mul_const"):
        return f"layers.{node}.{param}"
    module = "prelu" if node.startswith("prelu") else "conv"
    return f"layers.{node}.{module}.{param}"


def build(name: str, weights_dir: Path | None = None) -> GraphNet:
    """Build network ``name`` from ``<weights_dir>/<name>.json`` and load ``<name>.safetensors``
    into it (both checksum-verified), in float32 and eval mode, without gradients."""
    folder = weights_dir or WEIGHTS_DIR
    arch_path = verified_path(folder, f"{name}.json")
    net = GraphNet(NetSpec.load(arch_path))
    tensors = load_tensors(folder, name)
    net.load_state_dict({_state_key(k): v.float() for k, v in tensors.items()}, strict=True)
    net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net.eval().requires_grad_(False)
