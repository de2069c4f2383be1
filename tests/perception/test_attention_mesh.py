"""The attention mesh (mesh, eyelids and irises from one network) against MediaPipe's own runtime.

LiteRT lacks the network's three custom operators, so the reference is recorded: MediaPipe's graph
runtime on face crops of the shared DEV set, by tools/attention_mesh_reference.py (see its docstring);
the crops are recomputed here by the same code and must be the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from perception_support import load_rgb

from models.perception import FacePerception
from models.perception.graph import TransformTensor

REFERENCE = Path(__file__).parent / "data" / "attention_mesh_mediapipe.npz"


@pytest.fixture(scope="module")
def reference_tool(load_tool: Callable[[str], ModuleType]) -> ModuleType:
    return load_tool("attention_mesh_reference")


def test_outputs_match_mediapipe_runtime(
    shared_data: Path, perception: FacePerception, reference_tool: ModuleType
) -> None:
    crops = reference_tool.reference_crops(shared_data)
    with np.load(REFERENCE) as ref:
        recorded = {name: ref[name] for name in (*reference_tool.OUTPUTS, "crop_means")}
    means = crops.reshape(len(crops), -1).mean(axis=1)
    np.testing.assert_allclose(means, recorded["crop_means"], atol=0.05, err_msg="not the recorded input")

    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        ours = perception.mesh_net(x)
    for name, value in zip(reference_tool.OUTPUTS, ours, strict=True):
        diff = np.abs(value.reshape(len(crops), -1).numpy() - recorded[name])
        # landmarks are 192-px crop pixels; float noise is hundredths of a pixel (up to 0.017 px measured
        # with torch on 2 threads, whose summation order is not 1 thread's), a wrong operator is pixels off
        assert diff.max() < 0.05, f"{name}: max |diff| {diff.max():.5f} px"


def test_crop_pixels_whose_source_is_off_the_map_are_zero() -> None:
    """TransformTensorBilinear's rule: a crop pixel sampling outside the map's pixel-centre extent is 0,
    not a blend with the border (what plain zero-padded bilinear sampling would give)."""
    layer = TransformTensor({"inputs": [0, 1], "output_size": [2, 2]})
    features = torch.ones(1, 1, 4, 4)
    matrix = torch.eye(4)[None].clone()
    matrix[0, 0, 3] = 2.3  # crop pixel centres 0.5, 1.5 -> map x 2.3, 3.3 (the map ends at x = 3)
    out = layer(features, matrix)[0, 0]
    assert out[:, 0].tolist() == [1.0, 1.0]
    assert out[:, 1].tolist() == [0.0, 0.0]


def test_both_eye_readers_agree_on_each_eye(shared_data: Path, perception: FacePerception) -> None:
    """The attention heads and the iris network give the same eye under the same index, their points
    in the same order (eyelid ring and iris boundary), within a small part of the iris's size."""
    iris_network = FacePerception(device="cpu", eyes="iris")
    for photo in ("faces/barack_obama/2.png", "faces/kate_winslet/3.jpg", "faces/jim_parsons/2.png"):
        img = load_rgb(shared_data / photo)
        a, b = perception([img])[0][0], iris_network([img])[0][0]
        for eye in (0, 1):
            diameter = float(np.linalg.norm(b.iris[eye, 1, :2] - b.iris[eye, 3, :2]))
            iris_gap = np.linalg.norm(a.iris[eye, :, :2] - b.iris[eye, :, :2], axis=1).max()
            rings = a.eye_contours[eye, :16, :2] - b.eye_contours[eye, :16, :2]
            lid_gap = np.linalg.norm(rings, axis=1).mean()
            assert iris_gap < 0.3 * diameter, f"{photo} eye {eye}: iris points {iris_gap:.1f} px apart"
            assert lid_gap < 0.4 * diameter, f"{photo} eye {eye}: eyelid rings {lid_gap:.1f} px apart"


def test_unknown_eye_reader_is_refused() -> None:
    with pytest.raises(ValueError, match="eyes must be"):
        FacePerception(device="cpu", eyes="dlib")  # type: ignore[arg-type]
