"""The pixels of masked DICOM pass the same privacy check as masked photos (issue #5).

Shared photos are wrapped in VL Photographic Images, masked through the DICOM path
(``tools/dicom_eval_masker.py`` → ``dmask mask`` → ``services.dicom.mask_dicom``), and the decoded
output pixels are attacked by ``../shared/eval`` (maskeval) with both of its recognisers. The
thresholds are the photo targets of the digital mask (models/README.md): Mask2Face rank-1 at most
twice chance, and no masked face verified as its patient. The full 196-photo run is recorded in
services/dicom/README.md; CI runs 48 photos of 16 people to stay within minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from dicom_helpers import shared

ROOT = Path(__file__).resolve().parents[2]
IDENTITIES, PHOTOS_PER_IDENTITY = 16, 3
RECOGNISERS = ("dlib", "sface")


def _maskeval_python() -> Path:
    """The evaluation tool's own virtualenv (scripts/test creates it with ../shared/eval/setup.sh)."""
    for candidate in (
        os.environ.get("DMASK_MASKEVAL_PYTHON", ""),
        str(ROOT / ".venv-eval" / "bin" / "python"),
        str(shared().parent / "eval" / ".venv-eval" / "bin" / "python"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail("maskeval is not installed: run scripts/test, which sets it up from ../shared/eval")


def _subset(data: Path) -> None:
    """A data folder of the first 16 people (by name) with at least 3 photos, 3 photos each."""
    manifest = json.loads(shared("manifest.json").read_text())
    by_identity: dict[str, list[dict]] = defaultdict(list)
    for photo in manifest["photos"]:
        by_identity[photo["identity"]].append(photo)
    chosen = [name for name in sorted(by_identity) if len(by_identity[name]) >= PHOTOS_PER_IDENTITY]
    photos = [
        p for name in chosen[:IDENTITIES] for p in sorted(by_identity[name], key=lambda p: p["path"])[:3]
    ]
    data.mkdir()
    (data / "faces").symlink_to(shared("faces"), target_is_directory=True)
    (data / "manifest.json").write_text(json.dumps({"photos": photos, "videos": []}))


@pytest.fixture(scope="module")
def dicom_privacy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("dicom-privacy")
    _subset(work / "data")
    adapter = ROOT / "tools" / "dicom_eval_masker.py"
    masker = f"{shlex.quote(sys.executable)} {shlex.quote(str(adapter))} {{in}} {{out}}"
    result = work / "result.json"
    subprocess.run(
        [
            str(_maskeval_python()), "-m", "maskeval", "run",
            "--data", str(work / "data"), "--only", "photos", "--masker", masker,
            "--out", str(result), "--no-cache", "--jobs", "2", "--quiet",
        ],
        check=True,
        timeout=1200,
        env={**os.environ, "MASKEVAL_CACHE": str(work / "cache")},
    )  # fmt: skip
    return json.loads(result.read_text())["summary"]["photos"]


def test_every_photo_went_through_the_dicom_path(dicom_privacy: dict) -> None:
    assert dicom_privacy["n"] == IDENTITIES * PHOTOS_PER_IDENTITY
    assert dicom_privacy["n_masker_failed"] == 0


@pytest.mark.parametrize("recogniser", RECOGNISERS)
def test_masked_dicom_is_not_matched_to_its_patient(dicom_privacy: dict, recogniser: str) -> None:
    attack = dicom_privacy[recogniser]
    assert attack["orig_rank1"] >= 0.9, (
        "the recogniser must work on the originals for the check to mean anything"
    )
    assert attack["mask2face_rank1"] <= 2 * dicom_privacy["chance_rank1"]
    assert attack["mask2face_same_image_rank1"] <= 2 * dicom_privacy["chance_rank1"]


@pytest.mark.parametrize("recogniser", RECOGNISERS)
def test_masked_dicom_is_not_verified_as_its_patient(dicom_privacy: dict, recogniser: str) -> None:
    attack = dicom_privacy[recogniser]
    allowed = max(0.01, 1 / attack["n_queries"])  # the 1 % photo target; one query in 48 is 2 %
    assert attack["verify_rate"] <= allowed
    assert attack["same_image_verify_rate"] <= allowed
