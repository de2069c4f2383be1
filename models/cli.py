"""``python -m models``: mask photos and videos (or a folder of them) from the command line.

The product's ``dmask mask`` is this command with DICOM added (``workers/mask_cli.py``): a DICOM
file's header is de-identified with the deployment's keys, which belong to the service, and models/
imports nothing from services/ or workers/. So DICOM arrives here only through a ``dicom`` masker
passed in by that command; without one a DICOM file is refused with the reason.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from models.media import SNIFF_BYTES, MediaKind, sniff


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dmask mask",
        description="Replace every face with the digital mask and measure the eyes.",
    )
    p.add_argument("input", type=Path, help="photo, video or DICOM file, or a folder of them")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file (or folder for a folder)")
    p.add_argument("--metrics", type=Path, help="eye metrics JSON (CSV and PNG plot written beside it)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--batch", type=int, default=8, help="frames per network batch")
    p.add_argument(
        "--record-id",
        default="local",
        help="DICOM only (dmask mask): the record the file belongs to; the output Patient ID is its keyed"
        " pseudonym",
    )
    return p


DicomMasker = Callable[[Path, Path, argparse.Namespace], dict[str, Any]]
"""Masks one DICOM file (source, destination, the parsed arguments) and returns its eye metrics."""


def _mask_one(
    src: Path,
    dst: Path,
    metrics: Path | None,
    args: argparse.Namespace,
    bar: tqdm | None,
    dicom: DicomMasker | None,
) -> None:
    from models.api import MaskingError, mask_file
    from models.report import write_all

    with src.open("rb") as fh:
        kind = sniff(fh.read(SNIFF_BYTES)).kind
    if kind is MediaKind.DICOM:
        if dicom is None:
            raise MaskingError("a DICOM file is masked by `dmask mask`, which also de-identifies its header")
        result_metrics = dicom(src, dst, args)
    else:

        def progress(x: float) -> None:
            if bar is not None:
                bar.set_postfix_str(f"{src.name}: {x:.0%}")

        result = mask_file(src, dst, device=args.device, batch_size=args.batch, progress=progress)
        result_metrics = result.metrics
    if metrics is not None:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        write_all(result_metrics, metrics)


def mask_command(argv: list[str] | None = None, dicom: DicomMasker | None = None) -> int:
    """Mask a file or a folder; ``dicom`` masks DICOM files (``workers.mask_cli`` passes one)."""
    args = _parser().parse_args(argv)
    from models.api import MaskingError

    if args.input.is_dir():
        files = sorted(p for p in args.input.rglob("*") if p.is_file() and not p.name.startswith("."))
        args.output.mkdir(parents=True, exist_ok=True)
        failures = 0
        with tqdm(files, unit="file", file=sys.stderr) as bar:
            for src in bar:
                rel = src.relative_to(args.input)
                dst = args.output / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                metrics = (args.metrics / rel).with_suffix(".json") if args.metrics else None
                try:
                    _mask_one(src, dst, metrics, args, bar, dicom)
                except MaskingError as exc:
                    failures += 1
                    tqdm.write(f"{rel}: not masked: {exc.reason}", file=sys.stderr)
        print(f"masked {len(files) - failures} of {len(files)} files", file=sys.stderr)
        return 1 if failures else 0
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        _mask_one(args.input, args.output, args.metrics, args, None, dicom)
    except MaskingError as exc:
        print(f"dmask mask: not masked: {exc.reason}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print("dmask mask: input file not found", file=sys.stderr)
        return 2
    return 0


def main() -> None:
    raise SystemExit(mask_command())


if __name__ == "__main__":
    main()
