"""Helpers of the perception tests (importable from the test modules; conftest holds fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
MEDIAPIPE_VERSION = "0.10.21"
TFLITE_FILES = (
    "face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite",
    "face_landmark.tflite",
    "iris_landmark.tflite",
)

# A spread of the DEV photos: high-res colour, LFW 250x250, 150x150 grayscale crops, tilted heads,
# small faces in a group shot (the reference comparisons' inputs).
REFERENCE_PHOTOS = (
    "faces/angelina_jolie/1.jpg",
    "faces/barack_obama/2.png",
    "faces/george_w_bush/1.jpg",
    "faces/jim_parsons/2.png",
    "faces/kate_winslet/3.jpg",
    "faces/megan_fox/4.jpg",
    "faces/_groups/friends_cast.jpg",
    "faces/_groups/obama_and_biden.jpg",
)


def shared_data_dir() -> Path:
    return Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_rgb(path: Path) -> np.ndarray:
    """Decode by content (one .jpg is WebP), apply EXIF orientation, RGB uint8."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
