"""Processing benchmark: masking throughput of one worker process, CPU or GPU (JSON on stdout).

What one ``dmask worker`` pool process does per job, minus the storage and database round trips:
decode, detect, track, render, encode (``models.api.mask_file``, the call the runner makes). The
model is loaded once and warmed up on one photo before timing. Reports photos per second over the
shared photos and frames per second over the shared videos (each video's own frames / seconds), the
torch thread count, and the load average before and after: on a shared 2-core machine other
engineers' work lowers these numbers, so read them together. With ``--device cuda`` it also reports
the GPU's name and the peak GPU memory torch allocated (the worker's ``DMASK_DEVICE=cuda`` path).

    .venv/bin/python benchmarks/processing.py [--device cpu|cuda] [--photos 20] \
        [--videos livep_d0.mp4] [--out FILE]

Run on demand, not in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def gpu_setup(torch: Any, device: str) -> dict[str, Any]:
    """Name and peak allocated memory of the GPU ``device`` (nothing on CPU)."""
    if not device.startswith("cuda"):
        return {}
    return {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_peak_allocated_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20, help="how many shared photos (manifest order)")
    ap.add_argument("--videos", default="livep_d0.mp4", help="comma-separated names under videos/")
    ap.add_argument("--device", default="cpu", help="torch device the model runs on (cpu, cuda, cuda:1)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--shared",
        type=Path,
        default=Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data")),
    )
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device}: no CUDA device visible to torch", file=sys.stderr)
        return 2
    from models.api import MaskingError, get_model, mask_file

    manifest = json.loads((args.shared / "manifest.json").read_text())
    photos = [args.shared / p["path"] for p in manifest["photos"]][: args.photos]
    videos = [args.shared / "videos" / v for v in args.videos.split(",") if v]
    before = load_average()
    t0 = time.perf_counter()
    get_model(args.device, args.batch_size)
    load_s = time.perf_counter() - t0
    out_dir = Path(tempfile.mkdtemp(prefix="dmask-proc-"))
    mask_file(photos[0], out_dir / "warm.jpg", device=args.device, batch_size=args.batch_size)

    photo_times: list[float] = []
    failed = 0
    pixels = 0
    for i, p in enumerate(photos):
        t = time.perf_counter()
        try:
            mask_file(p, out_dir / f"p{i}{p.suffix}", device=args.device, batch_size=args.batch_size)
        except MaskingError:
            failed += 1
        photo_times.append(time.perf_counter() - t)
        pixels += next(x["width"] * x["height"] for x in manifest["photos"] if args.shared / x["path"] == p)
    video_results: list[dict[str, Any]] = []
    for v in videos:
        t = time.perf_counter()
        res = mask_file(v, out_dir / f"{v.stem}.mp4", device=args.device, batch_size=args.batch_size)
        dt = time.perf_counter() - t
        video_results.append(
            {
                "video": v.name,
                "frames": res.frames_total,
                "seconds": round(dt, 2),
                "frames_per_s": round(res.frames_total / dt, 2),
                "frames_blanked": res.frames_blanked,
            }
        )
    total = sum(photo_times)
    result = {
        "benchmark": "processing",
        "setup": {
            "device": args.device,
            **gpu_setup(torch, args.device),
            "torch_threads": torch.get_num_threads(),
            "batch_size": args.batch_size,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "model_load_s": round(load_s, 2),
        "photos": {
            "count": len(photos),
            "no_face_or_refused": failed,
            "megapixels_mean": round(pixels / len(photos) / 1e6, 2),
            "seconds": round(total, 2),
            "photos_per_s": round(len(photos) / total, 3),
            "seconds_per_photo": {
                "median": round(statistics.median(photo_times), 2),
                "max": round(max(photo_times), 2),
            },
        },
        "videos": video_results,
        "load_average_before": before,
        "load_average_after": load_average(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
