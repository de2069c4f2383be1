"""End-to-end masking speed (decode -> mask -> encode) on the shared videos, beside deface.

    .venv/bin/python benchmarks/mask_speed.py [--device cpu|cuda] [--batch 8] [--out result.json]

The model is loaded once (as a worker does); each video is timed from its file to the written MP4.
deface (the eval tool's baseline, from its virtualenv: set MASKEVAL_VENV or it is looked for in the
default places) is timed on the same files in the same run, as a whole command like the eval tool does.
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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.api import get_model, mask_file  # noqa: E402


def _deface_bin() -> Path | None:
    candidates = [
        os.environ.get("MASKEVAL_VENV", ""),
        str(ROOT.parent / "shared/eval/.venv-eval"),
        str(Path.home() / ".cache/maskeval/venv"),
    ]
    for c in candidates:
        if c and (Path(c) / "bin/deface").exists():
            return Path(c) / "bin/deface"
    return None


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("DMASK_SHARED_DATA", ROOT.parent / "shared/data"))
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="first N videos only")
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    manifest = json.loads((args.data / "manifest.json").read_text())
    videos = manifest["videos"][: args.limit or None]
    t0 = time.perf_counter()
    get_model(args.device, args.batch)
    load_s = time.perf_counter() - t0
    deface = None if args.no_deface else _deface_bin()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for v in videos:
            src = args.data / v["path"]
            n = _frames(src)
            t = time.perf_counter()
            res = mask_file(src, Path(tmp) / "out.mp4", device=args.device, batch_size=args.batch)
            dm = time.perf_counter() - t
            row = {
                "video": v["path"],
                "size": f"{v['width']}x{v['height']}",
                "frames": n,
                "dmask_s": round(dm, 3),
                "dmask_fps": round(n / dm, 2),
                "blanked": res.frames_blanked,
            }
            if deface is not None:
                t = time.perf_counter()
                subprocess.run(
                    [str(deface), str(src), "-o", str(Path(tmp) / "deface.mp4"), "--keep-audio"],
                    check=True,
                    capture_output=True,
                )
                df = time.perf_counter() - t
                row.update({"deface_s": round(df, 3), "deface_fps": round(n / df, 2)})
            rows.append(row)
    total_frames = sum(r["frames"] for r in rows)
    result = {
        "benchmark": "mask_speed",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0)
        if args.device == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "batch": args.batch,
        "model_load_s": round(load_s, 3),
        "videos": rows,
        "dmask_fps_overall": round(total_frames / sum(r["dmask_s"] for r in rows), 2),
        "deface_fps_overall": (round(total_frames / sum(r["deface_s"] for r in rows), 2) if deface else None),
        "deface": str(deface) if deface else "not found (set MASKEVAL_VENV)",
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
