"""Side-by-side strips (original | mask) of chosen video frames, cropped to the eyes: what the numbers
in models/README.md look like to a person.

Usage: python tools/eye_strip.py OUT.png VIDEO:FRAME[,FRAME...][:LABEL] [VIDEO:FRAMES[:LABEL] ...]

Each VIDEO is masked with the model (``models.api.mask_file``) into a temporary folder; every listed
frame becomes one row: the original's eye region beside the same region of the mask, with its label.
The originals are test data (../shared/data): the strip is for internal documentation only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.api import mask_file  # noqa: E402
from models.media.video import iter_frames  # noqa: E402
from models.perception import FacePerception  # noqa: E402

ROW_WIDTH = 520  # pixels per half-row (original or mask)


def _frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for i, frame in enumerate(iter_frames(path)):
        if i in wanted:
            out[i] = frame.image
        if i >= max(wanted):
            break
    return out


def _eye_box(perception: FacePerception, image: np.ndarray) -> tuple[int, int, int, int]:
    """A box around both eyes of the largest face (from the original, used for both halves)."""
    faces = perception([image])[0]
    if not faces:
        h, w = image.shape[:2]
        return 0, 0, w, h
    face = max(faces, key=lambda f: float(np.ptp(f.mesh[:, 0])))
    eyes = face.mesh[[33, 133, 263, 362, 105, 334, 145, 374], :2]
    (x0, y0), (x1, y1) = eyes.min(0), eyes.max(0)
    pad_x, pad_y = 0.25 * (x1 - x0), 0.6 * (y1 - y0)
    h, w = image.shape[:2]
    return (
        int(max(0, x0 - pad_x)),
        int(max(0, y0 - pad_y)),
        int(min(w, x1 + pad_x)),
        int(min(h, y1 + pad_y)),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("items", nargs="+", help="VIDEO:FRAME[,FRAME...][:LABEL]")
    p.add_argument("--work", type=Path, help="keep (and reuse) the masked videos in this folder")
    args = p.parse_args(argv)
    perception = FacePerception()
    rows: list[Image.Image] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.work or Path(scratch)
        for item in args.items:
            parts = item.split(":")
            video, frames = Path(parts[0]), [int(f) for f in parts[1].split(",")]
            label = parts[2] if len(parts) > 2 else video.stem
            masked = tmp / f"{video.stem}.mp4"
            if not masked.exists():
                mask_file(video, masked)
            originals, masks = _frames(video, set(frames)), _frames(masked, set(frames))
            box = _eye_box(perception, originals[frames[0]])
            for f in frames:
                halves = [Image.fromarray(img[f]).crop(box) for img in (originals, masks)]
                scale = ROW_WIDTH / halves[0].width
                size = (ROW_WIDTH, max(1, round(halves[0].height * scale)))
                row = Image.new("RGB", (2 * ROW_WIDTH, size[1]))
                for k, half in enumerate(halves):
                    row.paste(half.resize(size, Image.Resampling.LANCZOS), (k * ROW_WIDTH, 0))
                ImageDraw.Draw(row).text((6, 4), f"{label} - frame {f}", fill=(255, 255, 0))
                rows.append(row)
    strip = Image.new("RGB", (2 * ROW_WIDTH, sum(r.height for r in rows)))
    y = 0
    for row in rows:
        strip.paste(row, (0, y))
        y += row.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
