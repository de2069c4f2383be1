"""``dmask landmarks``: draw what face perception sees on a photo or video (a debugging aid).

    dmask landmarks INPUT -o OUTPUT.png|.jpg|.mp4 [--json LANDMARKS.json]
                    [--detector full|short] [--device cpu|cuda] [--min-score 0.5] [--batch-size 8]

Draws detection boxes and keypoints, the 468 mesh points, the eye contours and iris circles.
Photos are written as PNG/JPEG/WebP (by the output's extension), videos as H.264 MP4 (video only,
no audio: the output is for looking at landmarks, not for distribution). ``--json`` dumps every
face of every frame in frame pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .types import FaceLandmarks

PHOTO_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
EYE_COLOURS = ((0, 220, 255), (255, 80, 220))  # RGB: subject's right eye cyan, left eye magenta


def _round(a: np.ndarray, digits: int = 2) -> Any:
    return np.round(a.astype(np.float64), digits).tolist()


def face_to_json(face: FaceLandmarks) -> dict[str, Any]:
    det = face.detection
    return {
        "detection": None
        if det is None
        else {"box": _round(det.box), "score": round(det.score, 4), "keypoints": _round(det.keypoints)},
        "roi": {
            "cx": round(face.roi.cx, 2),
            "cy": round(face.roi.cy, 2),
            "size": round(face.roi.size, 2),
            "rotation": round(face.roi.rotation, 5),
        },
        "presence": round(face.presence, 4),
        "mesh": _round(face.mesh),
        "eye_contours": _round(face.eye_contours),
        "iris": _round(face.iris),
    }


def draw(frame: np.ndarray, faces: list[FaceLandmarks]) -> np.ndarray:
    """RGB uint8 frame with the landmarks of ``faces`` drawn on a copy."""
    out = np.ascontiguousarray(frame).copy()
    scale = max(out.shape[:2]) / 1000.0
    thick = max(1, round(2 * scale))
    dot = max(1, round(1.5 * scale))
    for face in faces:
        if face.detection is not None:
            x0, y0, x1, y1 = (round(float(v)) for v in face.detection.box)
            cv2.rectangle(out, (x0, y0), (x1, y1), (0, 255, 0), thick, cv2.LINE_AA)
            cv2.putText(
                out,
                f"{face.detection.score:.2f}",
                (x0, max(0, y0 - 4 * thick)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * max(scale, 0.5),
                (0, 255, 0),
                thick,
                cv2.LINE_AA,
            )
            for x, y in face.detection.keypoints:
                cv2.circle(out, (round(float(x)), round(float(y))), 2 * dot, (255, 60, 60), -1, cv2.LINE_AA)
        for x, y, _ in face.mesh:
            cv2.circle(out, (round(float(x)), round(float(y))), dot, (255, 255, 255), -1)
        for eye in range(2):
            colour = EYE_COLOURS[eye]
            for x, y, _ in face.eye_contours[eye, :16]:
                cv2.circle(out, (round(float(x)), round(float(y))), dot, colour, -1)
            centre = face.iris[eye, 0, :2]
            radius = float(np.linalg.norm(face.iris[eye, 1:, :2] - centre, axis=1).mean())
            cv2.circle(
                out,
                (round(float(centre[0])), round(float(centre[1]))),
                max(1, round(radius)),
                colour,
                thick,
                cv2.LINE_AA,
            )
            cv2.circle(out, (round(float(centre[0])), round(float(centre[1]))), dot, colour, -1)
    return out


def _open_photo(path: Path) -> np.ndarray | None:
    """The photo as RGB uint8, or None when the file is not an image Pillow can read."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError):
        return None


def _video_frames(path: Path) -> tuple[Iterator[tuple[float | None, np.ndarray]], Fraction]:
    import av

    container = av.open(str(path))
    stream = container.streams.video[0]
    rate = stream.average_rate or Fraction(25, 1)

    def frames() -> Iterator[tuple[float | None, np.ndarray]]:
        try:
            for frame in container.decode(stream):
                yield (
                    (float(frame.time) if frame.time is not None else None),
                    frame.to_ndarray(format="rgb24"),
                )
        finally:
            container.close()

    return frames(), Fraction(rate)


def _batches(
    it: Iterator[tuple[float | None, np.ndarray]], n: int
) -> Iterator[list[tuple[float | None, np.ndarray]]]:
    batch: list[tuple[float | None, np.ndarray]] = []
    for item in it:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def landmarks_command(argv: list[str] | None = None) -> int:
    """Entry point of ``dmask landmarks``; returns the process exit status."""
    ap = argparse.ArgumentParser(prog="dmask landmarks", description=__doc__.splitlines()[0])
    ap.add_argument("input", type=Path, help="photo or video")
    ap.add_argument(
        "-o", "--output", type=Path, required=True, help="OUTPUT.png|.jpg|.webp for photos, .mp4 for videos"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write all landmarks as JSON")
    ap.add_argument("--detector", choices=["full", "short"], default="full")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-score", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)

    if not args.input.is_file():
        print(f"dmask landmarks: no such file: {args.input}", file=sys.stderr)
        return 2
    from .pipeline import FacePerception

    fp = FacePerception(device=args.device, detector=args.detector, min_detection_score=args.min_score)
    suffix = args.output.suffix.lower()
    record: dict[str, Any] = {"input": args.input.name, "detector": args.detector, "frames": []}

    photo = _open_photo(args.input)
    if photo is not None:
        if suffix not in PHOTO_SUFFIXES:
            print(f"dmask landmarks: photo output must be one of {sorted(PHOTO_SUFFIXES)}", file=sys.stderr)
            return 2
        faces = fp([photo])[0]
        Image.fromarray(draw(photo, faces)).save(args.output, format=PHOTO_SUFFIXES[suffix])
        record.update(kind="photo", width=photo.shape[1], height=photo.shape[0])
        record["frames"].append({"index": 0, "time": None, "faces": [face_to_json(f) for f in faces]})
        n_faces = len(faces)
    else:
        if suffix != ".mp4":
            print("dmask landmarks: video output must be .mp4", file=sys.stderr)
            return 2
        try:
            frames, rate = _video_frames(args.input)
            n_faces = _draw_video(fp, frames, rate, args.output, args.batch_size, record)
        except Exception as exc:  # PyAV raises a family of errors for undecodable input
            print(f"dmask landmarks: cannot read {args.input.name} as photo or video: {exc}", file=sys.stderr)
            return 2
    if args.json:
        args.json.write_text(json.dumps(record) + "\n")
    print(f"{args.output}: {len(record['frames'])} frame(s), {n_faces} face(s)", file=sys.stderr)
    return 0


def _draw_video(
    fp: Any,
    frames: Iterator[tuple[float | None, np.ndarray]],
    rate: Fraction,
    output: Path,
    batch_size: int,
    record: dict[str, Any],
) -> int:
    import av

    n_faces = 0
    index = 0
    with av.open(str(output), mode="w") as out:
        stream: Any = None
        for batch in _batches(frames, max(1, batch_size)):
            images = [img for _, img in batch]
            results = fp(images)
            for (t, img), faces in zip(batch, results, strict=True):
                if stream is None:
                    h, w = img.shape[:2]
                    stream = out.add_stream("libx264", rate=rate)
                    stream.width, stream.height = w - w % 2, h - h % 2  # yuv420p needs even sizes
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "20", "preset": "veryfast"}
                    record.update(kind="video", width=w, height=h, fps=float(rate))
                drawn = draw(img, faces)[: stream.height, : stream.width]
                for packet in stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(drawn), format="rgb24")
                ):
                    out.mux(packet)
                record["frames"].append(
                    {"index": index, "time": t, "faces": [face_to_json(f) for f in faces]}
                )
                n_faces += len(faces)
                index += 1
        if stream is None:
            raise ValueError("no video frames")
        for packet in stream.encode():
            out.mux(packet)
    return n_faces


if __name__ == "__main__":
    raise SystemExit(landmarks_command())
