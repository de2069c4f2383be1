#!/usr/bin/env bash
# Fetch the five MediaPipe face-perception .tflite models (+ mediapipe's LICENSE) that
# tools/convert_tflite.py converts and tests/perception/test_reference.py compares against.
#
# Usage: tools/fetch_mediapipe_models.sh DEST_DIR
#
# Why a pinned wheel: the converted weights in models/weights/ must be reproducible bit for bit,
# and mediapipe==0.10.21 is the release they were converted from. Only the wheel is downloaded
# (--no-deps); nothing is installed.
set -euo pipefail

MEDIAPIPE_VERSION="${MEDIAPIPE_VERSION:-0.10.21}"
PYTHON="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3

if [ $# -ne 1 ]; then
  echo "usage: $0 DEST_DIR" >&2
  exit 2
fi
dest="$1"
mkdir -p "$dest"

members=(
  "mediapipe/modules/face_detection/face_detection_short_range.tflite"
  "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
  "mediapipe/modules/face_landmark/face_landmark.tflite"
  "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"
  "mediapipe/modules/iris_landmark/iris_landmark.tflite"
)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --implementation cp \
  "mediapipe==${MEDIAPIPE_VERSION}" -d "$tmp"
wheel="$(ls "$tmp"/mediapipe-"${MEDIAPIPE_VERSION}"-*.whl | head -n 1)"

# A wheel is a zip; Python's zipfile avoids depending on the unzip binary.
"$PYTHON" - "$wheel" "$dest" "${members[@]}" <<'PY'
import os
import sys
import zipfile

wheel, dest, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    for member in members:
        with zf.open(member) as src, open(os.path.join(dest, os.path.basename(member)), "wb") as dst:
            dst.write(src.read())
    license_name = next(n for n in names if n.endswith(".dist-info/LICENSE"))
    with zf.open(license_name) as src, open(os.path.join(dest, "LICENSE"), "wb") as dst:
        dst.write(src.read())
print(f"extracted {len(members)} models + LICENSE into {dest}")
PY
