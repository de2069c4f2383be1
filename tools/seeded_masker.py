"""Mask one file with the appearance draw fixed by the file's content: for paired model comparisons.

Two eval runs of one model differ by their random appearance draws (skin tone, light, lash and brow
density), and on ten videos that spread is as large as a rendering change's effect (models/README.md).
Run both models through this masker with the same ``--seed`` and each input gets the same draw under
both, so what differs between the runs is the change alone. Never for production masking: a fixed draw
makes masks of one file reproducible, which is what per-mask random draws exist to prevent.

    cd ../shared/eval && ./maskeval.sh run --data ../data --only videos \\
        --masker 'cd REPO && .venv/bin/python tools/seeded_masker.py --seed 1 {in} {out}' --out a.json
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.api import mask_file  # noqa: E402
from models.pipeline import DigitalMask  # noqa: E402


def appearance_seed(seed: int, src: Path) -> int:
    """The same number for the same run seed and file content, whatever the file is called."""
    digest = hashlib.sha256(str(seed).encode() + src.read_bytes()).digest()
    return int.from_bytes(digest[:8], "little")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--seed", type=int, default=1, help="run seed: the same for the runs being compared")
    p.add_argument(
        "--fit-iris",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit the iris centres to the picture (the default); --no-fit-iris keeps the networks' reading",
    )
    args = p.parse_args(argv)
    model = DigitalMask(appearance_seed=appearance_seed(args.seed, args.src), fit_iris=args.fit_iris)
    mask_file(args.src, args.dst, model=model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
