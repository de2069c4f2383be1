"""Peak memory of masking one long 1080p video, against its length (is it flat in video length?).

    .venv/bin/python benchmarks/memory.py [--frames 300 900 1800] [--fps 30] [--out result.json]
    .venv/bin/python benchmarks/memory.py --minutes 30          # the whole 30-minute exam video

For each length a 1920x1080 H.264 video is synthesised by looping a shared video (livep_s18, a woman
indoors, face ~150 px, centred on a 1080p canvas) and masked by ``models.api.mask_file`` in a fresh
child process, whose peak resident memory (ru_maxrss) is reported. A straight line through the points
gives the memory per frame and the extrapolation to a 30-minute video at 30 fps (54,000 frames), so the
claim "within 2 GiB" can be checked on a short run and confirmed with ``--minutes 30`` where time allows.
Each point also has ``rss_mib_by_progress``: resident memory when masking reached each tenth of its
progress (the analysis pass ends at 0.7), because memory that levels off is not a straight line.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "videos/livep_s18.mp4"
WIDTH, HEIGHT = 1920, 1080
BUDGET_MIB = 2048.0
THIRTY_MINUTES = 30 * 60


def synthesise(src: Path, dst: Path, frames: int, fps: int) -> None:
    """A 1080p H.264 video of ``frames`` frames looping ``src`` centred on a grey canvas."""
    with av.open(str(src)) as c:
        loop = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    canvas = np.full((HEIGHT, WIDTH, 3), 96, dtype=np.uint8)
    h, w = loop[0].shape[:2]
    y0, x0 = (HEIGHT - h) // 2, (WIDTH - w) // 2
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(frames):
            k = i % (2 * len(loop) - 2)  # forwards then backwards: no jump at the loop point
            canvas[y0 : y0 + h, x0 : x0 + w] = loop[k if k < len(loop) else 2 * len(loop) - 2 - k]
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


_CHILD = """
import json, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from models.api import mask_file

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS"))

progress, samples, done = [0.0], [], threading.Event()
def sample():
    while not done.wait(0.5):
        samples.append((progress[0], rss_mib()))
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
r = mask_file(Path(sys.argv[2]), Path(sys.argv[3]), max_video_seconds=float(sys.argv[4]),
              progress=lambda p: progress.__setitem__(0, p))
done.set()
# resident memory when masking had reached each tenth of its progress (analysis ends at 0.7)
last = samples[-1][1] if samples else 0.0
by_progress = {f"{q:.1f}": round(next((m for p, m in samples if p >= q), last), 1)
               for q in [i / 10 for i in range(1, 11)]}
print(json.dumps({"seconds": time.perf_counter() - t, "frames": r.frames_total,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "rss_mib_by_progress": by_progress}))
"""


def measure(video: Path, workdir: Path, max_seconds: float) -> dict[str, object]:
    out = workdir / "masked.mp4"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), str(video), str(out), str(max_seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    out.unlink(missing_ok=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[300, 900, 1800])
    p.add_argument("--minutes", type=float, help="one run of this many minutes instead of --frames")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument(
        "--data", type=Path, default=Path(os.environ.get("DMASK_SHARED_DATA", ROOT.parent / "shared/data"))
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    lengths = [round(args.minutes * 60 * args.fps)] if args.minutes else args.frames
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in lengths:
            video = work / f"long_{n}.mp4"
            synthesise(args.data / SOURCE, video, n, args.fps)
            m = measure(video, work, max_seconds=max(THIRTY_MINUTES, n / args.fps + 1))
            video.unlink()
            points.append({"frames": n, "video_seconds": n / args.fps, **m})
            print(json.dumps(points[-1]), file=sys.stderr)
    result: dict[str, object] = {
        "benchmark": "memory",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average": os.getloadavg(),
        "video": {"width": WIDTH, "height": HEIGHT, "fps": args.fps, "source": SOURCE},
        "points": points,
        "budget_mib": BUDGET_MIB,
    }
    if len(points) >= 2:
        frames = np.array([q["frames"] for q in points], dtype=float)
        peaks = np.array([q["peak_rss_mib"] for q in points], dtype=float)
        slope, intercept = np.polyfit(frames, peaks, 1)
        at_30 = intercept + slope * THIRTY_MINUTES * args.fps
        within = bool(at_30 <= BUDGET_MIB)
        result["fit"] = {
            "kib_per_frame": slope * 1024.0,
            "intercept_mib": intercept,
            "extrapolated_30_min_mib": at_30,
            "within_budget": within,
        }
    else:
        within = not points or bool(points[0]["peak_rss_mib"] <= BUDGET_MIB)
        if points:
            result["within_budget"] = within
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if within else 3


if __name__ == "__main__":
    raise SystemExit(main())
