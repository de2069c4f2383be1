"""`dmask mask` from the command line: single files with metrics, folders with a progress bar."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models.cli import mask_command


def test_a_photo_is_masked_with_metrics_json_csv_and_plot(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "faces/angelina_jolie/1.jpg"
    rc = mask_command([str(src), "-o", str(tmp_path / "out.jpg"), "--metrics", str(tmp_path / "m.json")])
    assert rc == 0
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.size == Image.open(src).size and not im.info.get("exif")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["schema"] == "dmask.eye-metrics/1" and metrics["frames"] == 1
    rows = list(csv.reader((tmp_path / "m.csv").open()))
    assert rows[0][:3] == ["frame", "time_s", "aperture_mm_right"] and len(rows) == 2
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_webp_data_named_jpg_is_recognised_from_its_content(
    shared_data: Path, manifest: dict, tmp_path: Path
) -> None:
    webp = next(
        p["path"] for p in manifest["photos"] if (shared_data / p["path"]).read_bytes()[8:12] == b"WEBP"
    )
    assert mask_command([str(shared_data / webp), "-o", str(tmp_path / "out.webp")]) == 0
    assert (tmp_path / "out.webp").read_bytes()[8:12] == b"WEBP"


def test_a_folder_is_masked_and_a_faceless_file_is_reported_not_passed_through(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(shared_data / "faces/barack_obama/1.jpg", folder / "a.jpg")
    shutil.copy(shared_data / "faces/jeff_bezos/1.jpg", folder / "sub" / "b.jpg")
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(folder / "wall.png")
    proc = subprocess.run(
        [sys.executable, "-m", "models", str(folder), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "masked 2 of 3 files" in proc.stderr and "wall.png: not masked" in proc.stderr
    assert (tmp_path / "out/a.jpg").exists() and (tmp_path / "out/sub/b.jpg").exists()
    assert not (tmp_path / "out/wall.png").exists()


def test_the_model_cli_refuses_dicom_with_the_reason_and_writes_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    """DICOM headers are de-identified with the deployment's keys, which only `dmask mask` has."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "models",
            str(shared_data / "dicom/ot_pal8_face.dcm"),
            "-o",
            str(tmp_path / "o.dcm"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "dmask mask" in proc.stderr
    assert not (tmp_path / "o.dcm").exists()
