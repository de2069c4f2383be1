"""The evaluation's ceiling: a "mask" that keeps every pixel of the original, resampled imperceptibly.

The eval tool reads the eyes with dlib on the original and on the mask and correlates the two. How well
can a masker do against that reader? This masker writes the original video itself, by default scaled by
3% about the frame centre and shifted half a pixel (bilinear), and encoded as our masks are (H.264, crf
18): a change no person can see, but one that makes the reader fit its landmarks afresh, as it must on
any re-rendered face. The eval's numbers for it are the reader's own repeatability on the patient's own
face (``--scale 1 --shift 0``: the re-encode alone; ``--crf 0``: nearly lossless). A mask can only beat
them by being read with less noise than a face (models/README.md, "The reader's ceiling"). Never a
masker for patients: it keeps the face.

    cd ../shared/eval && ./maskeval.sh run --data ../data --only videos --label reader-ceiling \\
        --masker 'cd REPO && .venv/bin/python tools/reader_ceiling_masker.py {in} {out}' --out ceiling.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.media.video import VideoWriter, iter_frames, probe_video  # noqa: E402

SCALE = 1.03
SHIFT_PX = 0.5


def resample(rgb: np.ndarray, scale: float = SCALE, shift_px: float = SHIFT_PX) -> np.ndarray:
    """The frame scaled about its centre and shifted, same size (borders mirrored)."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += shift_px
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--scale", type=float, default=SCALE, help="zoom about the frame centre")
    p.add_argument("--shift", type=float, default=SHIFT_PX, help="horizontal and vertical shift, pixels")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (0 = lossless; our masks use 18)")
    args = p.parse_args(argv)
    info = probe_video(args.src)
    with VideoWriter.for_video(args.dst, info, crf=args.crf) as writer:
        for frame in iter_frames(args.src, info=info):
            image = resample(frame.image, args.scale, args.shift)
            writer.write(image, pts=frame.pts, duration=frame.duration or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
