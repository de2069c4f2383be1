"""``dmask mask``: mask photos, videos and DICOM files (or a folder of them) from the command line."""

from __future__ import annotations

import argparse
import sys
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
        help="DICOM only: the record the file belongs to; the output Patient ID is its keyed pseudonym",
    )
    return p


def _mask_dicom(src: Path, dst: Path, device: str, batch: int, record_id: str) -> dict[str, Any]:
    """DICOM in, DICOM out: the DICOM path masks every frame with the same model and de-identifies the
    header (PS3.15 Basic Profile). Keys come from the service settings (DMASK_HMAC_KEY)."""
    from models.api import MaskingError, get_model
    from services.settings import get_settings
    from workers.dicom import DeidKeys, DeidOptions, DicomError, HmacUidMapper, mask_dicom

    model = get_model(device, batch)
    key = get_settings().hmac_key.get_secret_value().encode()
    try:
        mask_dicom(
            src,
            dst,
            mask_frames=model.mask_frames,
            options=DeidOptions(),
            keys=DeidKeys.derive(key, record_id),
            uid_map=HmacUidMapper(key),
            frames_synthetic=True,  # the mask renders whole frames from numbers: no input pixel survives
        )
    except DicomError as exc:
        raise MaskingError(str(exc)) from exc
    return model.last_metrics or {}


def _mask_one(src: Path, dst: Path, metrics: Path | None, args: argparse.Namespace, bar: tqdm | None) -> None:
    from models.api import mask_file
    from models.report import write_all

    with src.open("rb") as fh:
        kind = sniff(fh.read(SNIFF_BYTES)).kind
    if kind is MediaKind.DICOM:
        result_metrics = _mask_dicom(src, dst, args.device, args.batch, args.record_id)
    else:

        def progress(x: float) -> None:
            if bar is not None:
                bar.set_postfix_str(f"{src.name}: {x:.0%}")

        result = mask_file(src, dst, device=args.device, batch_size=args.batch, progress=progress)
        result_metrics = result.metrics
    if metrics is not None:
        metrics.parent.mkdir(parents=True, exist_ok=True)
        write_all(result_metrics, metrics)


def mask_command(argv: list[str] | None = None) -> int:
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
                    _mask_one(src, dst, metrics, args, bar)
                except MaskingError as exc:
                    failures += 1
                    tqdm.write(f"{rel}: not masked: {exc.reason}", file=sys.stderr)
        print(f"masked {len(files) - failures} of {len(files)} files", file=sys.stderr)
        return 1 if failures else 0
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        _mask_one(args.input, args.output, args.metrics, args, None)
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
