"""Clinical-sign phantoms: real clips with ONE eye sign added at a known size (issue #14, item 4).

Why: the eye metrics and the mask must carry ptosis, squint, nystagmus and winks; a real clip with a
sign of known size, compared with the same clip untouched, tests that without a patient who has it
(the subject's own anatomy cancels in the difference). Sizes are in mm, turned into pixels with the
iris diameter (11.7 mm) measured by our own perception on the clip. The lids are placed by the iris
network's eyelid contour, as the model places them (the mesh's coarser eye ring sits up to a crease
above the margin). A wink is the subject's own shut eye from elsewhere in the video laid over the open
one; a ptosis lowers the lid margin over an eye that stays put; a squint or a nystagmus turns the eyeball
under lids that stay put (rotate_eyeball).

This reads real pixels: it is a test/evaluation tool and must never be imported by models/ or services/.

    python tools/phantoms.py ptosis --eye right --mm 2 IN OUT
    python tools/phantoms.py squint --eye left --deg 15 IN OUT
    python tools/phantoms.py nystagmus --eye both --hz 3 --deg 5 IN OUT
    python tools/phantoms.py wink --eye right --start 30 --frames 6 IN OUT
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.eyes import EYEBALL_RADIUS_MM  # noqa: E402
from models.media import VideoWriter, iter_frames, probe_video  # noqa: E402
from models.perception import FacePerception  # noqa: E402
from models.template import IRIS_DIAMETER_MM  # noqa: E402
from models.tracking import refine  # noqa: E402

EYES = {"right": 0, "left": 1}
# MediaPipe face-mesh indices per eye (0 = subject's right, OD; 1 = subject's left, OS)
UPPER_LID = ([33, 246, 161, 160, 159, 158, 157, 173, 133], [263, 466, 388, 387, 386, 385, 384, 398, 362])
LOWER_LID = ([33, 7, 163, 144, 145, 153, 154, 155, 133], [263, 249, 390, 373, 374, 380, 381, 382, 362])
BROW = ([46, 53, 52, 65, 55], [276, 283, 282, 295, 285])


@dataclass(frozen=True)
class EyeGeometry:
    """One eye in one frame, in pixels: lid curves (sorted by x), brow curve, iris centre and radius."""

    upper: np.ndarray  # (k, 2)
    lower: np.ndarray  # (k, 2)
    brow: np.ndarray  # (m, 2)
    iris_centre: np.ndarray  # (2,)
    iris_radius: float


def _curve(points: np.ndarray) -> np.ndarray:
    return points[np.argsort(points[:, 0])]


def measure(
    frames: list[np.ndarray], perception: FacePerception
) -> list[tuple[EyeGeometry, EyeGeometry] | None]:
    """Both eyes' geometry per frame (None where no face was found)."""
    out: list[tuple[EyeGeometry, EyeGeometry] | None] = []
    roi = None
    for frame in frames:
        if roi is None:  # detect once, then follow the mesh (detection is the slow part)
            dets = perception.detect(frame)[0]
            if not dets:
                out.append(None)
                continue
            roi = perception.roi_from_detection(dets[0])
        face = perception.landmarks(frame, [[roi]])[0][0]
        roi = perception.roi_from_mesh(face.mesh) if face.presence > 0.5 else None
        # the lids as the model sees them: the iris network's eyelid contour, not the coarser mesh ring
        # (which sits up to a crease above a closing lid's margin)
        mesh = refine(face).points[:, :2].astype(np.float64)
        eyes = []
        for e in (0, 1):
            iris = face.iris[e, :, :2].astype(np.float64)
            radius = 0.25 * float(np.linalg.norm(iris[1] - iris[3]) + np.linalg.norm(iris[2] - iris[4]))
            eyes.append(
                EyeGeometry(
                    _curve(mesh[UPPER_LID[e]]),
                    _curve(mesh[LOWER_LID[e]]),
                    _curve(mesh[BROW[e]]),
                    iris[0],
                    radius,
                )
            )
        out.append((eyes[0], eyes[1]))
    return out


def px_per_mm(geometry: list[tuple[EyeGeometry, EyeGeometry] | None]) -> float:
    """Pixels per mm on this clip: median iris diameter over frames and eyes / 11.7 mm."""
    diam = [2 * g.iris_radius for pair in geometry if pair for g in pair]
    if not diam:
        raise ValueError("no face found in the clip")
    return float(np.median(diam)) / IRIS_DIAMETER_MM


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def lower_upper_lid(frame: np.ndarray, eye: EyeGeometry, drop_px: float) -> np.ndarray:
    """The upper lid margin lowered by ``drop_px`` over the eye, as a ptosis lowers it.

    The lid skin slides down (a displacement fading from the full drop at the margin to 0 at the brow),
    and the lowered margin covers the top of the eye like an edge: the iris and sclera below it stay
    where they are, so the margin-to-pupil distance (MRD1) shrinks by the drop. The drop is capped by
    the aperture and tapered to 0 beyond the eye corners."""
    h, w = frame.shape[:2]
    x0, x1 = eye.upper[0, 0], eye.upper[-1, 0]
    width = x1 - x0
    taper = 0.25 * width
    xs = np.arange(int(max(0, x0 - taper)), int(min(w, x1 + taper + 1)))
    cx = np.clip(xs, x0, x1)
    up = np.interp(cx, eye.upper[:, 0], eye.upper[:, 1])
    lo = np.interp(cx, eye.lower[:, 0], eye.lower[:, 1])
    brow = np.interp(cx, eye.brow[:, 0], eye.brow[:, 1])
    drop = np.minimum(drop_px, np.maximum(lo - up, 0.0))
    outside = np.maximum(x0 - xs, xs - x1).clip(min=0)
    drop = drop * (1 - _smoothstep(outside / taper))
    y_top = int(max(0, brow.min()))
    y_bot = int(min(h, lo.max() + 2))
    ys = np.arange(y_top, y_bot)[:, None].astype(np.float64)
    above = _smoothstep((ys - brow[None]) / np.maximum(up - brow, 1.0)[None])  # 0 at brow, 1 at margin
    covered = np.clip(up[None] + drop[None] - ys + 0.5, 0.0, 1.0)  # 1 above the new margin, 0 below
    weight = np.where(ys < up[None], above, covered)
    disp = (weight * drop[None]).astype(np.float32)
    gx, gy = np.meshgrid(xs.astype(np.float32), ys[:, 0].astype(np.float32))
    region = frame[y_top:y_bot, xs[0] : xs[-1] + 1]
    warped = cv2.remap(frame, gx, gy - disp, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = frame.copy()
    out[y_top:y_bot, xs[0] : xs[-1] + 1] = warped if region.shape == warped.shape else region
    return out


def lid_opening(shape: tuple[int, ...], eye: EyeGeometry) -> np.ndarray:
    """Pixels between the lid margins (an image of ``shape``): the part of the eye a turn may move."""
    poly = np.concatenate([eye.upper, eye.lower[::-1]])
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask.astype(bool)


def rotate_eyeball(frame: np.ndarray, eye: EyeGeometry, dx_px: float) -> np.ndarray:
    """The eyeball turned so that its iris moves ``dx_px`` horizontally (+ = image right = the subject's
    left in a frontal view), under lids that stay put.

    Why a warp and not a moved disc: a real eye that turns carries its own sclera with it, compressed
    towards the corner it turns to and drawn out from under the other; the caruncle at the inner corner
    stays. A disc moved over a flat fill (the earlier phantom) left a patch of one colour, sampled from
    pixels that on a small eye are mostly lid margin and caruncle; our iris fit's reading of the squint
    moved with that fill by up to 5°, and both readers read more of a squint made so than of a turned
    eye (models/README.md, "Measured (2026-12-07, seventeenth session)"). Every row of the lid opening is
    resampled along x: the iris and its limbal ring (1.3 iris radii either side of its centre) shift
    rigidly, the sclera between them and each corner stretches or compresses linearly, and the corners
    do not move. Pixels outside the opening are untouched."""
    xs = np.concatenate([eye.upper[:, 0], eye.lower[:, 0]])
    left, right = float(xs.min()), float(xs.max())
    centre = float(eye.iris_centre[0])
    core = 1.3 * eye.iris_radius
    # the core keeps at least a pixel of sclera between it and a corner, before and after the turn; an
    # iris already near a corner has its far edge squeezed instead (a frame or two of a glancing eye)
    room = min(centre - left, centre + dx_px - left, right - centre, right - centre - dx_px) - 1.0
    core = min(core, room)
    src = np.array([left, centre - core, centre + core, right])
    dst = src + np.array([0.0, dx_px, dx_px, 0.0])
    if core < 1.0:
        raise ValueError(f"the eye ({right - left:.0f} px) is too narrow to turn its iris {dx_px:.1f} px")
    h, w = frame.shape[:2]
    x = np.arange(w, dtype=np.float64)
    # where each output column samples the input (identity beyond the corners)
    source_x = np.interp(x, dst, src)
    map_x = np.broadcast_to(source_x.astype(np.float32), (h, w))
    map_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    turned = cv2.remap(frame, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_LINEAR)
    opening = lid_opening(frame.shape, eye)
    out = frame.copy()
    out[opening] = turned[opening]
    return out


def rotation_mm(deg: float) -> float:
    """Horizontal iris displacement of an eye rotated ``deg`` (12 mm eyeball radius)."""
    return EYEBALL_RADIUS_MM * math.sin(math.radians(deg))


def _eyes(which: str) -> list[int]:
    return [0, 1] if which == "both" else [EYES[which]]


def ptosis(frames: list[np.ndarray], eye: str, mm: float, perception: FacePerception) -> list[np.ndarray]:
    geo = measure(frames, perception)
    drop = mm * px_per_mm(geo)
    return [
        f if g is None else lower_upper_lid(f, g[EYES[eye]], drop) for f, g in zip(frames, geo, strict=True)
    ]


def squint(frames: list[np.ndarray], eye: str, deg: float, perception: FacePerception) -> list[np.ndarray]:
    geo = measure(frames, perception)
    dx = rotation_mm(deg) * px_per_mm(geo)
    return [f if g is None else rotate_eyeball(f, g[EYES[eye]], dx) for f, g in zip(frames, geo, strict=True)]


def nystagmus(
    frames: list[np.ndarray], eye: str, hz: float, deg: float, fps: float, perception: FacePerception
) -> list[np.ndarray]:
    geo = measure(frames, perception)
    amp = rotation_mm(deg) * px_per_mm(geo)
    out = []
    for t, (f, g) in enumerate(zip(frames, geo, strict=True)):
        dx = amp * math.sin(2 * math.pi * hz * t / fps)
        for e in _eyes(eye):
            if g is not None:
                f = rotate_eyeball(f, g[e], dx)
        out.append(f)
    return out


def _lid_gap(geo: EyeGeometry) -> float:
    """Lid aperture at the iris, in pixels (0 = shut)."""
    x = geo.iris_centre[0]
    return float(
        np.interp(x, geo.lower[:, 0], geo.lower[:, 1]) - np.interp(x, geo.upper[:, 0], geo.upper[:, 1])
    )


SHUT_GAP = 0.1  # lid gap per eye width at or below which a donor eye counts as shut (livep_d18 f95: 0.07)


def closed_eye_donor(
    frames: list[np.ndarray], eye: int, perception: FacePerception
) -> tuple[np.ndarray, tuple[EyeGeometry, EyeGeometry]]:
    """The frame in which this subject's ``eye`` is most closed (relative to the eye's width, which a
    blink leaves alone), and both eyes' geometry there. ValueError if it is never shut: a wink made
    from a half-closed eye would claim a closure that is not there."""
    found = [(i, g) for i, g in enumerate(measure(frames, perception)) if g is not None]
    if not found:
        raise ValueError("no face found in the donor frames")

    def gap(geo: EyeGeometry) -> float:
        return _lid_gap(geo) / float(geo.upper[-1, 0] - geo.upper[0, 0])

    i, pair = min(found, key=lambda ig: gap(ig[1][eye]))
    if gap(pair[eye]) > SHUT_GAP:
        narrowest = gap(pair[eye])
        raise ValueError(f"the eye is never shut in these frames (narrowest: {narrowest:.2f} eye widths)")
    return frames[i], pair


def _brows(pair: tuple[EyeGeometry, EyeGeometry]) -> np.ndarray:
    return np.concatenate([pair[0].brow, pair[1].brow]).astype(np.float32)


def transplant_eye(
    frame: np.ndarray, eye: EyeGeometry, anchors: np.ndarray, donor: np.ndarray, donor_anchors: np.ndarray
) -> np.ndarray:
    """The donor frame's eye region (the same subject, eye shut) laid over ``frame``'s eye.

    Aligned by a similarity transform fitted to ``anchors`` (both brows), which a blink does not move.
    Not to the eye corners: on a shut eye the network puts the outer corner a few pixels off (on
    ``livep_d18`` 7 px low), and a donor eye tilted by that read as half open. Blended under a soft
    ellipse from below the lower lid to below the brow, with the donor's colour matched to the frame's
    on the skin ring around the eye (exposure drifts across a video)."""
    m, _ = cv2.estimateAffinePartial2D(donor_anchors, anchors, method=cv2.LMEDS)
    dst = np.array([eye.upper[0], eye.upper[-1]], np.float32)
    h, w = frame.shape[:2]
    warped = cv2.warpAffine(donor, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    width = float(np.linalg.norm(dst[1] - dst[0]))
    centre = tuple(int(round(c)) for c in 0.5 * (dst[0] + dst[1]))
    angle = math.degrees(math.atan2(float(dst[1, 1] - dst[0, 1]), float(dst[1, 0] - dst[0, 0])))

    def ellipse(scale: float) -> np.ndarray:
        mask = np.zeros((h, w), np.float32)
        axes = (int(0.8 * width * scale), int(0.42 * width * scale))
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
        return mask

    inner = cv2.GaussianBlur(ellipse(1.0), (0, 0), 0.08 * width)
    ring = (ellipse(1.3) > 0) & (ellipse(1.0) == 0)
    gain = frame[ring].astype(np.float64).mean(0) / np.maximum(warped[ring].astype(np.float64).mean(0), 1.0)
    matched = np.clip(warped.astype(np.float64) * gain, 0, 255)
    out = frame.astype(np.float64) * (1 - inner[..., None]) + matched * inner[..., None]
    return np.round(out).astype(np.uint8)


def wink(
    frames: list[np.ndarray],
    eye: str,
    start: int,
    n: int,
    perception: FacePerception,
    donors: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """One eye shut for ``n`` frames from ``start``: the subject's own shut eye (the most closed frame of
    ``donors``, by default the clip itself) laid over that eye. Warping the open lid down cannot make a
    shut eye: the lid skin that covers a shut eye is folded away under the crease of an open one."""
    e = EYES[eye]
    geo = measure(frames, perception)
    donor, donor_pair = closed_eye_donor(donors if donors is not None else frames, e, perception)
    return [
        transplant_eye(f, g[e], _brows(g), donor, _brows(donor_pair))
        if g is not None and start <= t < start + n
        else f
        for t, (f, g) in enumerate(zip(frames, geo, strict=True))
    ]


def median_per_eye(rows: list[Any], eye: int) -> float:
    """Median of one eye's values over frames (rows of [OD, OS]; None rows or values skipped)."""
    return float(np.nanmedian([np.nan if r is None or r[eye] is None else r[eye] for r in rows]))


def maskeval_python() -> Path | None:
    """The eval tool's interpreter (DMASK_MASKEVAL_PYTHON, else the repository's .venv-eval), or None."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (
        os.environ.get("DMASK_MASKEVAL_PYTHON", ""),
        str(repo / ".venv-eval" / "bin" / "python"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def dlib_reading(video: Path, python: Path, original: Path | None = None) -> dict[str, Any]:
    """The eval tool's dlib reader on a video (``tools/dlib_eyes.py`` run by ``python``, the eval
    tool's interpreter): per frame and eye, aperture and pupil position in pixels. For a mask, pass
    its ``original``: the face read is then the one at the original's face, as the eval tool reads."""
    reference = [str(original)] if original is not None else []
    out = subprocess.run(
        [str(python), str(Path(__file__).with_name("dlib_eyes.py")), str(video), *reference],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    reading: dict[str, Any] = json.loads(out.stdout)
    return reading


def per_video_cli(
    description: str,
    analyse: Callable[[Path, Path | None, Path], dict[str, Any]],
    argv: list[str] | None = None,
    summary: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
) -> int:
    """The command line of the reader-comparison tools (``pose_offsets``, ``pupil_channel``): videos,
    optionally a folder of their masks (same stem, .mp4), each video's row as it is done on stderr,
    and all rows (with ``summary``'s result, if given) as JSON on stdout and in ``--out``.
    ``analyse(video, mask or None, eval interpreter)`` makes one row."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("videos", type=Path, nargs="+")
    p.add_argument("--masked", type=Path, help="a folder of masks named as the videos (same stem, .mp4)")
    p.add_argument("--out", type=Path, help="write the JSON here as well as to stdout")
    args = p.parse_args(argv)
    python = maskeval_python()
    if python is None:
        p.error("the eval tool's interpreter was not found (set DMASK_MASKEVAL_PYTHON)")
    rows = []
    for video in args.videos:
        masked = args.masked / f"{video.stem}.mp4" if args.masked else None
        rows.append(analyse(video, masked if masked is not None and masked.is_file() else None, python))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result: dict[str, Any] = {"summary": summary(rows)} if summary is not None else {}
    text = json.dumps({**result, "videos": rows}, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


def read_clip(path: Path, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    """The first ``max_frames`` upright RGB frames and the clip's frame rate."""
    frames: list[np.ndarray] = []
    for vf in iter_frames(path):
        frames.append(vf.image)
        if max_frames and len(frames) >= max_frames:
            break
    return frames, float(probe_video(path).fps)


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Lossless (crf 0): a lossy x264 encode differs by a few levels from run to run when the machine
    is busy (its threads), and a phantom must be the same clip every time it is made."""
    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps, w, h, crf=0) as writer:
        for f in frames:
            writer.write(f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sign", choices=["ptosis", "squint", "nystagmus", "wink", "none"])
    ap.add_argument("input", type=Path)
    ap.add_argument("output", type=Path)
    ap.add_argument("--eye", default="right", choices=["right", "left", "both"])
    ap.add_argument("--mm", type=float, default=2.0, help="ptosis: upper-lid drop")
    ap.add_argument("--deg", type=float, default=15.0, help="squint: rotation; nystagmus: amplitude")
    ap.add_argument("--hz", type=float, default=3.0, help="nystagmus frequency")
    ap.add_argument("--start", type=int, default=30, help="wink: first closed frame")
    ap.add_argument("--frames", type=int, default=6, help="wink: closed frames")
    ap.add_argument("--max-frames", type=int, default=90)
    a = ap.parse_args(argv)
    frames, fps = read_clip(a.input, a.max_frames)
    out = make(a.sign, frames, fps, eye=a.eye, mm=a.mm, deg=a.deg, hz=a.hz, start=a.start, n=a.frames)
    write_clip(a.output, out, fps)
    return 0


def make(
    sign: str,
    frames: list[np.ndarray],
    fps: float,
    *,
    eye: str = "right",
    mm: float = 2.0,
    deg: float = 15.0,
    hz: float = 3.0,
    start: int = 30,
    n: int = 6,
    perception: FacePerception | None = None,
    donors: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """One sign added to ``frames`` ("none": the frames unchanged, the comparison clip)."""
    p = perception or FacePerception("cpu", fit_iris=False)
    if sign == "ptosis":
        return ptosis(frames, eye, mm, p)
    if sign == "squint":
        return squint(frames, eye, deg, p)
    if sign == "nystagmus":
        return nystagmus(frames, eye, hz, deg, fps, p)
    if sign == "wink":
        return wink(frames, eye, start, n, p, donors)
    if sign == "none":
        return list(frames)
    raise ValueError(f"unknown sign {sign!r}")


if __name__ == "__main__":
    raise SystemExit(main())
