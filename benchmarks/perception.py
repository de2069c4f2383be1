"""Benchmark FacePerception: ms per frame for detection, mesh and iris, single frame and batched.

Usage: python benchmarks/perception.py [--device cpu|cuda] [--threads N] [--batches 1,8,16]
                                       [--frame PATH] [--repeat N] [--out FILE.json]

Prints one JSON object to stdout. Frames are 640x480 (480p) with one face: the first frame of a
shared DEV video (or a shared photo, or PATH), so the numbers reflect the masking workload.
Why median-of-repeats: the machines this runs on are shared; the median is stable where the mean
is not. With other CPU work running, prefer --threads 1 (or OMP_WAIT_POLICY=PASSIVE): OpenMP's
spin-waiting threads otherwise lose most of their time to the other processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.perception import FacePerception  # noqa: E402
from models.perception import roi as roi_ops  # noqa: E402
from models.perception.pipeline import IRIS_SIZE, MESH_SIZE  # noqa: E402


def _shared_data() -> Path:
    return Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_frame(path: Path | None) -> tuple[np.ndarray, str]:
    """A 640x480 RGB frame with a face."""
    import cv2

    if path is None:
        videos = sorted((_shared_data() / "videos").glob("livep_*.mp4"))
        if videos:
            import av

            with av.open(str(videos[0])) as container:
                frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
            return cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA), str(videos[0].name)
        path = _shared_data() / "faces" / "angelina_jolie" / "2.jpg"
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return cv2.resize(rgb, (640, 480), interpolation=cv2.INTER_AREA), path.name


def timeit(fn: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    """Median wall-clock milliseconds of ``fn`` after two warm-up calls."""
    fn()
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--batches", default="1,8,16")
    ap.add_argument("--detector", choices=["short", "full"], default="full")
    ap.add_argument("--frame", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fp = FacePerception(device=device, detector=args.detector)
    frame, source = load_frame(args.frame)
    dets = fp.detect(frame)[0]
    if not dets:
        raise SystemExit(f"no face in the benchmark frame {source}")
    roi = fp.roi_from_detection(dets[0])

    results: dict[str, dict[str, float]] = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        frames = [frame] * batch
        rois = [[roi]] * batch
        row: dict[str, float] = {}
        row["detect"] = timeit(lambda fr=frames: fp.detect(fr), args.repeat, sync) / batch
        row["landmarks"] = timeit(lambda fr=frames, r=rois: fp.landmarks(fr, r), args.repeat, sync) / batch
        row["total"] = timeit(lambda fr=frames: fp(fr), args.repeat, sync) / batch

        # network-only costs (inputs prepared once): what the model stages cost without the glue
        with torch.inference_mode():
            ft = fp._frame_tensor(frame)
            r = roi_ops.roi_tensor([roi], device)
            det_in = torch.cat([fp._letterbox(ft)[0]] * batch)
            mesh_in = (roi_ops.crop(ft, r, MESH_SIZE) / 255.0).repeat(batch, 1, 1, 1)
            mesh = roi_ops.project(fp.mesh_net(mesh_in[:1])[0].reshape(1, -1, 3), r, MESH_SIZE)
            eyes = roi_ops.eye_rois_tensor(mesh).reshape(-1, 4)
            iris_in = (roi_ops.crop(ft, eyes, IRIS_SIZE, fp._eye_flip) / 255.0).repeat(batch, 1, 1, 1)

            def run(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
                return lambda: net(x)

            row["detector_net"] = timeit(run(fp.detector_net, det_in), args.repeat, sync) / batch
            row["mesh_net"] = timeit(run(fp.mesh_net, mesh_in), args.repeat, sync) / batch
            row["iris_net_2_eyes"] = timeit(run(fp.iris_net, iris_in), args.repeat, sync) / batch
        results[f"batch_{batch}"] = {k: round(v, 3) for k, v in row.items()}

    report = {
        "benchmark": "perception",
        "unit": "ms per frame (one face per frame), median",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        # shared machines: other processes' load changes CPU numbers a lot
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "detector": args.detector,
        "frame": {"source": source, "height": frame.shape[0], "width": frame.shape[1]},
        "repeat": args.repeat,
        "results": results,
        "notes": {
            "detect": "letterbox + detector net + decoding + weighted NMS",
            "landmarks": "face crop + mesh net + eye crops + iris net (both eyes) + projections",
            "total": "detect + landmarks (FacePerception.__call__)",
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
