"""Record what MediaPipe's own runtime computes with the attention mesh, for our port to be checked against.

    python tools/attention_mesh_reference.py --mediapipe-python MP_VENV/bin/python \\
        tests/perception/data/attention_mesh_mediapipe.npz

Why a recorded reference: the attention mesh (face_landmark_with_attention.tflite) uses three MediaPipe
custom operators (Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks) that LiteRT
does not have, so tests/perception cannot run it the way it runs the other four networks. MediaPipe's
own graph runtime (its InferenceCalculator with TfLiteCustomOpResolverCalculator) does have them, but
the mediapipe package is far too heavy to be a test dependency. So this tool runs it once, in a venv of
its own (``python -m venv MP_VENV && MP_VENV/bin/pip install mediapipe==0.10.21``), on face crops that
our own detection and crop make from the shared DEV photos and video frames, and writes the network's
seven outputs beside each crop's mean value; the test recomputes the crops and compares.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "perception"))  # the test helpers: this tool makes a test fixture

from perception_support import REFERENCE_PHOTOS, load_rgb  # noqa: E402

# The reference comparisons' photos, and video frames: a shut eye (livep_d18 frame 95), an upward gaze
# (livep_d11), a turned head in a crowd (hamilton).
SOURCES = (
    *REFERENCE_PHOTOS,
    "videos/livep_d18.mp4#95",
    "videos/livep_d11.mp4#40",
    "videos/hamilton_white_house.mp4#30",
)
FACES_PER_SOURCE = 2  # the best two detections of each
OUTPUTS = ("mesh", "lips", "left_eye", "right_eye", "left_iris", "right_iris", "face_flag")


def load_source(shared_data: Path, source: str) -> np.ndarray:
    """RGB uint8 pixels of a photo, or of one frame of a video (``path#frame``)."""
    import cv2

    path, _, frame = source.partition("#")
    if not frame:
        return load_rgb(shared_data / path)
    cap = cv2.VideoCapture(str(shared_data / path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(frame))
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok:
        raise ValueError(f"cannot read frame {frame} of {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def reference_crops(shared_data: Path) -> np.ndarray:
    """(N, 192, 192, 3) uint8 mesh-network crops of the faces of SOURCES, made by our own detector and
    crop (the input both runtimes get)."""
    import torch

    from models.perception import FacePerception
    from models.perception import roi as roi_ops
    from models.perception.pipeline import MESH_SIZE

    perception = FacePerception(device="cpu")
    crops = []
    for source in SOURCES:
        frame = load_source(shared_data, source)
        tensor = perception._frame_tensor(frame)
        for det in perception.detect(frame)[0][:FACES_PER_SOURCE]:
            rois = roi_ops.roi_tensor([roi_ops.roi_from_detection(det)], tensor.device)
            crop = roi_ops.crop(tensor, rois, MESH_SIZE)[0].permute(1, 2, 0)
            crops.append(crop.round().clamp(0, 255).to(torch.uint8).numpy())
    return np.stack(crops)


# Runs inside the mediapipe venv (numpy + mediapipe only): a graph of ImageToTensor -> Inference (with
# MediaPipe's custom op resolver) -> the seven output tensors as float lists.
_MEDIAPIPE_SCRIPT = r"""
import os, sys
import numpy as np
import mediapipe as mp
from google.protobuf import text_format
# imported for the calculator options they register
from mediapipe.calculators.core import split_vector_calculator_pb2  # noqa: F401
from mediapipe.calculators.tensor import image_to_tensor_calculator_pb2  # noqa: F401
from mediapipe.calculators.tensor import inference_calculator_pb2  # noqa: F401
from mediapipe.framework import calculator_pb2
from mediapipe.python import packet_creator, packet_getter
from mediapipe.python._framework_bindings import calculator_graph, resource_util

outputs = sys.argv[3].split(",")
resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
ranges = " ".join(f"ranges {{ begin: {i} end: {i + 1} }}" for i in range(len(outputs)))
split = " ".join(f'output_stream: "t{i}"' for i in range(len(outputs)))
floats = " ".join(
    f'node {{ calculator: "TensorsToFloatsCalculator" '
    f'input_stream: "TENSORS:t{i}" output_stream: "FLOATS:{n}" }}'
    for i, n in enumerate(outputs)
)
config = f'''
input_stream: "image"
node {{ calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image" output_stream: "TENSORS:input"
  options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{
    output_tensor_width: 192 output_tensor_height: 192 keep_aspect_ratio: false
    output_tensor_float_range {{ min: 0.0 max: 1.0 }} }} }} }}
node {{ calculator: "TfLiteCustomOpResolverCalculator" output_side_packet: "OP_RESOLVER:op_resolver" }}
node {{ calculator: "InferenceCalculator"
  input_stream: "TENSORS:input" input_side_packet: "OP_RESOLVER:op_resolver"
  output_stream: "TENSORS:output"
  options {{ [mediapipe.InferenceCalculatorOptions.ext] {{
    model_path: "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"
    delegate {{ xnnpack {{}} }} }} }} }}
node {{ calculator: "SplitTensorVectorCalculator" input_stream: "output" {split}
  options {{ [mediapipe.SplitVectorCalculatorOptions.ext] {{ {ranges} }} }} }}
{floats}
'''
graph = calculator_graph.CalculatorGraph(
    graph_config=text_format.Parse(config, calculator_pb2.CalculatorGraphConfig())
)
latest = {}
for name in outputs:
    graph.observe_output_stream(name, lambda stream, packet: latest.update({stream: packet}), True)
graph.start_run({})
crops = np.load(sys.argv[1])["crops"]
results = {name: [] for name in outputs}
for i, crop in enumerate(crops):
    latest.clear()
    pixels = np.ascontiguousarray(crop)
    frame = packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=pixels)
    graph.add_packet_to_input_stream("image", frame.at(i))
    graph.wait_until_idle()
    for name in outputs:
        results[name].append(np.array(packet_getter.get_float_list(latest[name]), np.float32))
graph.close()
np.savez(sys.argv[2], **{name: np.stack(v) for name, v in results.items()})
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the .npz to write")
    p.add_argument("--mediapipe-python", required=True, help="python of a venv with mediapipe==0.10.21")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the shared DEV data")
    args = p.parse_args(argv)
    crops = reference_crops(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        crops_path, ref_path = Path(tmp) / "crops.npz", Path(tmp) / "reference.npz"
        np.savez(crops_path, crops=crops)
        script_args = [str(crops_path), str(ref_path), ",".join(OUTPUTS)]
        subprocess.run([args.mediapipe_python, "-c", _MEDIAPIPE_SCRIPT, *script_args], check=True)
        with np.load(ref_path) as ref:
            outputs = {name: ref[name] for name in OUTPUTS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, crop_means=crops.reshape(len(crops), -1).mean(axis=1), **outputs)
    print(f"{len(crops)} crops -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
