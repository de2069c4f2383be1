"""Loading of the bundled, converted MediaPipe weights: safetensors only, checksum-verified.

Why verify: the weights are part of a medical privacy product; a silently truncated or swapped file
must fail loudly at start-up rather than produce faces that are not masked. No pickle, no download.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
CHECKSUM_FILE = "CHECKSUMS.sha256"


class WeightsError(RuntimeError):
    """A weight file is missing, unlisted or does not match its recorded checksum."""


@cache
def _checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUM_FILE
    if not path.is_file():
        raise WeightsError(f"missing {path}")
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def verified_path(folder: Path, filename: str) -> Path:
    """Return ``folder/filename`` after checking its SHA-256 against CHECKSUMS.sha256."""
    path = folder / filename
    expected = _checksums(folder.resolve()).get(filename)
    if expected is None:
        raise WeightsError(f"{filename} is not listed in {folder / CHECKSUM_FILE}")
    if not path.is_file():
        raise WeightsError(f"missing weight file {path}")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise WeightsError(f"checksum mismatch for {path}: {actual} != {expected}")
    return path


def load_tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of ``<name>.safetensors`` (fp16 or fp32 as stored), checksum-verified."""
    return load_file(str(verified_path(folder, f"{name}.safetensors")))
