"""Write eye metrics as JSON (the schema), CSV (one row per frame) and a PNG plot of the series."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

_COLUMNS = (
    ("aperture_mm", ("right", "left")),
    ("mrd1_mm", ("right", "left")),
    ("mrd2_mm", ("right", "left")),
    ("fissure_width_mm", ("right", "left")),
    ("iris_offset_h_mm", ("right", "left")),
    ("iris_offset_v_mm", ("right", "left")),
    ("head_pose_deg", ("yaw", "pitch", "roll")),
)


def write_json(metrics: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(metrics, indent=1, allow_nan=False))


def write_csv(metrics: dict[str, Any], path: Path) -> None:
    fps = metrics.get("fps")
    series = metrics["series"]
    blink_frames = {b["frame"] for b in metrics["summary"]["blinks"]}
    header = (
        ["frame", "time_s"] + [f"{name}_{part}" for name, parts in _COLUMNS for part in parts] + ["blink"]
    )
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(metrics["frames"]):
            row: list[Any] = [i, round(i / fps, 4) if fps else ""]
            for name, parts in _COLUMNS:
                values = series[name][i]
                row.extend("" if values[k] is None else values[k] for k in range(len(parts)))
            row.append(1 if i in blink_frames else 0)
            w.writerow(row)


def write_plot(metrics: dict[str, Any], path: Path) -> None:
    """Time series a clinician reads: aperture per eye with blinks marked, iris position, head pose."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fps = metrics.get("fps") or 1.0
    n = metrics["frames"]
    t = np.arange(n) / fps
    s = {
        k: np.array([[np.nan if v is None else v for v in row] for row in s], dtype=float).reshape(n, -1)
        for k, s in metrics["series"].items()
    }
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    axes[0].plot(t, s["aperture_mm"][:, 0], label="right eye (OD)")
    axes[0].plot(t, s["aperture_mm"][:, 1], label="left eye (OS)")
    for b in metrics["summary"]["blinks"]:
        axes[0].axvspan(b["start_s"], b["end_s"], color="0.85")
    axes[0].set_ylabel("eyelid aperture (mm)")
    axes[0].legend(loc="upper right")
    axes[1].plot(t, s["iris_offset_h_mm"][:, 0], label="right, horizontal")
    axes[1].plot(t, s["iris_offset_h_mm"][:, 1], label="left, horizontal")
    axes[1].plot(t, s["iris_offset_v_mm"].mean(axis=1), label="vertical (mean)", linestyle="--")
    axes[1].set_ylabel("iris offset (mm)")
    axes[1].legend(loc="upper right")
    for k, name in enumerate(("yaw", "pitch", "roll")):
        axes[2].plot(t, s["head_pose_deg"][:, k], label=name)
    axes[2].set_ylabel("head pose (deg)")
    axes[2].set_xlabel("time (s)" if metrics.get("fps") else "frame")
    axes[2].legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_all(metrics: dict[str, Any], json_path: Path) -> list[Path]:
    """JSON at ``json_path``, CSV and PNG beside it (same stem)."""
    csv_path = json_path.with_suffix(".csv")
    png_path = json_path.with_suffix(".png")
    write_json(metrics, json_path)
    write_csv(metrics, csv_path)
    write_plot(metrics, png_path)
    return [json_path, csv_path, png_path]
