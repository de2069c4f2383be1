"""Typed builder: a committed JSON layer list (models/weights/<net>.json) -> an NCHW ``nn.Module``.

Why a builder instead of four hand-written classes: the four MediaPipe networks (BlazeFace short
range, the FPN-style full-range detector, the face mesh and the two-branch iris net) are all made of
the same handful of TFLite layers. Describing them once as data keeps the conversion exact (the layer
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
    """safetensors key ``conv12.weight`` -> module path ``layers.conv12.conv.weight``."""
    node, param = key.split(".")
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
