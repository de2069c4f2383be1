"""Convert MediaPipe's face-perception .tflite models into safetensors + a JSON layer list.

Usage: python tools/convert_tflite.py SRC_DIR [--out models/weights]

SRC_DIR is what tools/fetch_mediapipe_models.sh produced (five .tflite files + LICENSE).

Why this shape: the runtime (models/perception/graph.py) must not depend on TFLite, flatbuffers or
pickle. The converter therefore reduces each TFLite graph to a short list of typed layers in NCHW
terms (convolution with explicit TFLite-SAME padding, PReLU, add, ...) and stores the constant
tensors in PyTorch layout. Constants are read from the file (fp16 ones are stored as fp16 again:
lossless, half the size; DEQUANTIZE of fp16 is exactly that cast); the dense values of sparse constants
are read from the LiteRT interpreter itself (DENSIFY outputs), so the weights are exactly those TFLite
computes with. The attention mesh's MediaPipe custom operators become layers of their own (LiteRT
cannot run that model, hence the file reading).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from flatbuffers import flexbuffers
from safetensors.numpy import save_file

MODELS = {
    # name in models/weights : tflite file
    "face_detection_short_range": "face_detection_short_range.tflite",
    "face_detection_full_range": "face_detection_full_range_sparse.tflite",
    "face_landmark": "face_landmark.tflite",
    "iris_landmark": "iris_landmark.tflite",
    "face_landmark_with_attention": "face_landmark_with_attention.tflite",
}
SOURCE = "mediapipe==0.10.21 wheel from PyPI (mediapipe/modules/...)"

_OPNAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_ACT = {0: "none", 1: "relu", 3: "relu6"}
_CONST_PRODUCERS = {"DEQUANTIZE", "DENSIFY"}
_FILE_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
}


def _opts(op: Any, cls: type) -> Any:
    raw = op.BuiltinOptions()
    o = cls()
    o.Init(raw.Bytes, raw.Pos)
    return o


def _same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TFLite SAME padding: total split with the extra pixel at the END (bottom/right)."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, path: Path) -> None:
        self.path = path
        buf = path.read_bytes()
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        self.g = self.model.Subgraphs(0)
        self._interp: Interpreter | None = None
        self.producer: dict[int, tuple[str, Any]] = {}
        self.consumers: dict[int, int] = {}
        for i in range(self.g.OperatorsLength()):
            op = self.g.Operators(i)
            for t in op.OutputsAsNumpy():
                self.producer[int(t)] = (self.opname(op), op)
            for t in op.InputsAsNumpy():
                self.consumers[int(t)] = self.consumers.get(int(t), 0) + 1

    @property
    def interp(self) -> Interpreter:
        """LiteRT, run once on zeros, for the dense values of sparse constants (DENSIFY outputs).
        Only the sparse full-range detector needs it; models with MediaPipe's custom operators
        (which LiteRT does not have) never get here."""
        if self._interp is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._interp = Interpreter(
                    model_path=str(self.path),
                    experimental_preserve_all_tensors=True,
                    # without XNNPACK: the delegate would consume the constants itself and never
                    # materialise the DENSIFY outputs we read
                    experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                )
            self._interp.allocate_tensors()
            inp = self._interp.get_input_details()[0]
            self._interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
            self._interp.invoke()
        return self._interp

    def opname(self, op: Any) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = _OPNAMES[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if builtin == "CUSTOM":
            return f"CUSTOM:{code.CustomCode().decode()}:v{code.Version()}"
        return builtin

    def custom_options(self, op: Any) -> dict[str, Any]:
        if not op.CustomOptionsLength():
            return {}
        return dict(flexbuffers.Loads(bytes(op.CustomOptionsAsNumpy())))

    def shape(self, t: int) -> list[int]:
        return [int(v) for v in self.g.Tensors(t).ShapeAsNumpy()]

    def tname(self, t: int) -> str:
        return str(self.g.Tensors(t).Name().decode())

    def file_value(self, t: int) -> np.ndarray | None:
        """A tensor's value as stored in the file (its buffer), or None when it has none."""
        tensor = self.g.Tensors(t)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:  # flatbuffers returns 0 for an absent vector
            return None
        dtype = _FILE_DTYPES[tensor.Type()]
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(self.shape(t))

    def const(self, t: int) -> tuple[np.ndarray, bool]:
        """Dense fp32 value of a constant tensor and whether it was stored as fp16 in the file.

        Read from the file where it is there (a constant, or DEQUANTIZE of an fp16 constant, which is
        the exact fp16 -> fp32 cast); only sparse constants (DENSIFY) need the interpreter."""
        stored = self.file_value(t)
        if stored is not None:
            return stored.astype(np.float32), stored.dtype == np.float16
        src = self.producer.get(t)
        if src is None or src[0] not in _CONST_PRODUCERS:
            raise ValueError(f"{self.tname(t)} is not a constant")
        first_in = int(src[1].InputsAsNumpy()[0])
        if src[0] == "DEQUANTIZE":
            stored = self.file_value(first_in)
            if stored is not None:
                return stored.astype(np.float32), stored.dtype == np.float16
        value = np.array(self.interp.get_tensor(t))
        was_fp16 = value.dtype == np.float16 or self.interp.get_tensor(first_in).dtype == np.float16
        # DEQUANTIZE(DENSIFY(fp16)): look one level further for the original dtype
        src2 = self.producer.get(first_in)
        if src2 is not None and src2[0] == "DENSIFY":
            was_fp16 = was_fp16 or self.interp.get_tensor(int(src2[1].InputsAsNumpy()[0])).dtype == np.float16
        return value.astype(np.float32), was_fp16

    def convert(self, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        g = self.g
        (inp,) = [int(t) for t in g.InputsAsNumpy()]
        value_of: dict[int, int] = {inp: 0}  # tflite tensor -> value id (0 = input, k = node k-1)
        folded_pad: dict[int, tuple[int, list[int]]] = {}  # pad output -> (pad input, [t, b, l, r])
        nodes: list[dict[str, Any]] = []
        tensors: dict[str, np.ndarray] = {}
        counters: dict[str, int] = {}
        outputs = [int(t) for t in g.OutputsAsNumpy()]

        def emit(node: dict[str, Any], out_tensor: int) -> None:
            k = counters.get(node["op"], 0)
            counters[node["op"]] = k + 1
            node = {"name": f"{node['op']}{k}", **node, "tflite": self.tname(out_tensor)}
            nodes.append(node)
            value_of[out_tensor] = len(nodes)

        def put(key: str, arr: np.ndarray, fp16: bool) -> None:
            if fp16:
                half = arr.astype(np.float16)
                assert np.array_equal(half.astype(np.float32), arr), key
                tensors[key] = np.ascontiguousarray(half)
            else:
                tensors[key] = np.ascontiguousarray(arr, dtype=np.float32)

        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            kind = self.opname(op)
            ins = [int(t) for t in op.InputsAsNumpy()]
            (out,) = [int(t) for t in op.OutputsAsNumpy()][:1]
            if kind in _CONST_PRODUCERS:
                continue
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                src, wt = ins[0], ins[1]
                bias = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
                w, w16 = self.const(wt)
                if kind == "CONV_2D":
                    o = _opts(op, tflite.Conv2DOptions)
                    w = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                    groups = 1
                    dilation = [o.DilationHFactor(), o.DilationWFactor()]
                else:
                    o = _opts(op, tflite.DepthwiseConv2DOptions)
                    assert o.DepthMultiplier() == 1, "depth multiplier != 1 not used by these models"
                    w = w.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
                    groups = w.shape[0]
                    dilation = [o.DilationHFactor(), o.DilationWFactor()]
                assert dilation == [1, 1]
                stride = [o.StrideH(), o.StrideW()]
                kh, kw = w.shape[2], w.shape[3]
                if src in folded_pad:
                    assert o.Padding() == tflite.Padding.VALID
                    src, pad = folded_pad.pop(src)
                elif o.Padding() == tflite.Padding.SAME:
                    _, h, wd, _ = self.shape(src)
                    pad = [*_same_pad(h, kh, stride[0]), *_same_pad(wd, kw, stride[1])]
                else:
                    pad = [0, 0, 0, 0]
                node = {
                    "op": "conv",
                    "input": value_of[src],
                    "in_ch": int(self.shape(src)[3]),
                    "out_ch": int(w.shape[0]),
                    "kernel": [kh, kw],
                    "stride": stride,
                    "pad": pad,
                    "groups": int(groups),
                    "act": _ACT[o.FusedActivationFunction()],
                }
                emit(node, out)
                put(f"{nodes[-1]['name']}.weight", w, w16)
                if bias is not None:
                    b, b16 = self.const(bias)
                    put(f"{nodes[-1]['name']}.bias", b, b16)
            elif kind == "PRELU":
                alpha, a16 = self.const(ins[1])
                emit({"op": "prelu", "input": value_of[ins[0]], "channels": int(alpha.size)}, out)
                put(f"{nodes[-1]['name']}.weight", alpha.reshape(-1), a16)
            elif kind == "RELU":
                emit({"op": "relu", "input": value_of[ins[0]]}, out)
            elif kind == "ADD":
                o = _opts(op, tflite.AddOptions)
                assert self.shape(ins[0]) == self.shape(ins[1]), "no broadcasting adds in these models"
                emit(
                    {
                        "op": "add",
                        "inputs": [value_of[ins[0]], value_of[ins[1]]],
                        "act": _ACT[o.FusedActivationFunction()],
                    },
                    out,
                )
            elif kind == "PAD":
                pads = np.asarray(self.file_value(ins[1])).astype(int).tolist()  # NHWC [[b, a]] * 4
                assert pads[0] == [0, 0]
                spatial_only = pads[3] == [0, 0]
                consumers_are_valid_convs = self.consumers.get(out, 0) == 1
                if spatial_only and consumers_are_valid_convs:
                    # A Keras ZeroPadding2D in front of a VALID convolution: fold into the conv.
                    folded_pad[out] = (ins[0], [*pads[1], *pads[2]])
                    continue
                assert pads[1] == [0, 0] and pads[2] == [0, 0] and pads[3][0] == 0, pads
                emit({"op": "channel_pad", "input": value_of[ins[0]], "extra": int(pads[3][1])}, out)
            elif kind == "MAX_POOL_2D":
                o = _opts(op, tflite.Pool2DOptions)
                k = [o.FilterHeight(), o.FilterWidth()]
                s = [o.StrideH(), o.StrideW()]
                if o.Padding() == tflite.Padding.SAME:
                    _, h, wd, _ = self.shape(ins[0])
                    pad = [*_same_pad(h, k[0], s[0]), *_same_pad(wd, k[1], s[1])]
                else:
                    pad = [0, 0, 0, 0]
                assert pad == [0, 0, 0, 0], "padded max-pool not used by these models"
                emit({"op": "maxpool", "input": value_of[ins[0]], "kernel": k, "stride": s}, out)
            elif kind == "RESIZE_BILINEAR":
                o = _opts(op, tflite.ResizeBilinearOptions)
                size = self.shape(out)[1:3]
                emit(
                    {
                        "op": "resize_bilinear",
                        "input": value_of[ins[0]],
                        "size": size,
                        "align_corners": bool(o.AlignCorners()),
                        "half_pixel_centers": bool(o.HalfPixelCenters()),
                    },
                    out,
                )
            elif kind == "DEPTH_TO_SPACE":
                o = _opts(op, tflite.DepthToSpaceOptions)
                emit({"op": "depth_to_space", "input": value_of[ins[0]], "block": o.BlockSize()}, out)
            elif kind == "RESHAPE":
                shape = self.shape(out)[1:]
                if len(self.shape(ins[0])) != 4 and len(shape) == 3:
                    # landmarks back into a (1, 1, C) head vector: kept flat, as a graph output (the
                    # runtime treats 4-D values as NCHW feature maps)
                    assert shape[:2] == [1, 1] and out in outputs, "a 4-D landmark reshape is an output"
                    shape = shape[2:]
                emit({"op": "reshape", "input": value_of[ins[0]], "shape": shape}, out)
            elif kind == "MUL":
                factor, f16 = self.const(ins[1])
                assert self.file_value(ins[0]) is None and len(self.shape(ins[0])) == 3, (
                    "MUL of a landmark value by a constant only"
                )
                emit({"op": "mul_const", "input": value_of[ins[0]], "shape": list(factor.shape)}, out)
                put(f"{nodes[-1]['name']}.constant", factor, f16)
            elif kind == "STRIDED_SLICE":
                begin, end, strides = (np.asarray(self.file_value(t)).tolist() for t in ins[1:4])
                whole = (
                    begin == [0] * len(begin) and end == self.shape(ins[0]) and strides == [1] * len(begin)
                )
                assert whole, "only the whole-tensor slice (an identity) is used by these models"
                value_of[out] = value_of[ins[0]]
            elif kind == "CUSTOM:Landmarks2TransformMatrix:v2":
                o = self.custom_options(op)
                emit(
                    {
                        "op": "landmarks_to_matrix",
                        "input": value_of[ins[0]],
                        "subset": [int(i) for i in o["subset_idxs"]],
                        "rotation_points": [int(o["left_rotation_idx"]), int(o["right_rotation_idx"])],
                        "target_rotation": float(o["target_rotation_radians"]),
                        "output_size": [int(o["output_height"]), int(o["output_width"])],
                        "scale": [float(o["scale_x"]), float(o["scale_y"])],
                    },
                    out,
                )
            elif kind == "CUSTOM:TransformTensorBilinear:v2":
                o = self.custom_options(op)
                emit(
                    {
                        "op": "transform_tensor",
                        "inputs": [value_of[ins[0]], value_of[ins[1]]],
                        "output_size": [int(o["output_height"]), int(o["output_width"])],
                    },
                    out,
                )
            elif kind == "CUSTOM:TransformLandmarks:v2":
                assert self.shape(ins[0])[-1] == 2, "2-D landmarks only (v2 reads them off the shape)"
                emit({"op": "transform_landmarks", "inputs": [value_of[ins[0]], value_of[ins[1]]]}, out)
            elif kind == "CONCATENATION":
                o = _opts(op, tflite.ConcatenationOptions)
                assert len(self.shape(ins[0])) == 3 and o.Axis() in (1, -2), "concat of flattened heads only"
                emit({"op": "concat", "inputs": [value_of[t] for t in ins], "axis": 1}, out)
            else:
                raise NotImplementedError(f"{name}: TFLite op {kind} not supported")
        assert not folded_pad, "a folded PAD was not consumed by a convolution"
        arch = {
            "name": name,
            "source": SOURCE,
            "input_shape": self.shape(inp)[1:],  # H, W, C (the network itself runs NCHW)
            "outputs": [
                {"name": self.tname(t), "value": value_of[t], "shape": self.shape(t)[1:]} for t in outputs
            ],
            "nodes": nodes,
        }
        return arch, tensors


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NOTICE = """DigitalMask bundled model weights
=================================

The files face_detection_short_range.*, face_detection_full_range.*, face_landmark.*,
face_landmark_with_attention.* and iris_landmark.* in this folder are derived from the MediaPipe
models

  mediapipe/modules/face_detection/face_detection_short_range.tflite
  mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite
  mediapipe/modules/face_landmark/face_landmark.tflite
  mediapipe/modules/face_landmark/face_landmark_with_attention.tflite
  mediapipe/modules/iris_landmark/iris_landmark.tflite

as shipped in the mediapipe==0.10.21 wheel on PyPI (https://pypi.org/project/mediapipe/0.10.21/),
Copyright The MediaPipe Authors, licensed under the Apache License, Version 2.0
(full text: LICENSE-mediapipe.txt in this folder, copied from the wheel).

Modifications: the TFLite graphs were converted by tools/convert_tflite.py into a JSON layer list and
safetensors tensors in PyTorch (NCHW / OIHW) layout. Weight values are unchanged (fp16 values kept
as fp16, sparse tensors densified). MediaPipe's custom operators of the attention mesh
(Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks) are layers of
models/perception/graph.py, written from their Apache-2.0 sources in
mediapipe/util/tflite/operations. Reproduce with:

  tools/fetch_mediapipe_models.sh /tmp/mp && python tools/convert_tflite.py /tmp/mp
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder with the .tflite files and LICENSE")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "weights")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fname in MODELS.items():
        arch, tensors = _Converter(args.src / fname).convert(name)
        arch["source_sha256"] = sha256(args.src / fname)
        arch_path = args.out / f"{name}.json"
        arch_path.write_text(json.dumps(arch, indent=1) + "\n")
        st_path = args.out / f"{name}.safetensors"
        # one metadata key only: safetensors writes a metadata map in hash order (not reproducible)
        save_file(tensors, str(st_path), metadata={"source": f"{SOURCE}: {fname}"})
        written += [arch_path, st_path]
        n_params = sum(int(t.size) for t in tensors.values())
        print(f"{name}: {len(arch['nodes'])} layers, {n_params} parameters", file=sys.stderr)
    shutil.copyfile(args.src / "LICENSE", args.out / "LICENSE-mediapipe.txt")
    (args.out / "NOTICE").write_text(NOTICE)
    written += [args.out / "LICENSE-mediapipe.txt", args.out / "NOTICE"]
    lines = [f"{sha256(p)}  {p.name}\n" for p in sorted(written)]
    (args.out / "CHECKSUMS.sha256").write_text("".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
