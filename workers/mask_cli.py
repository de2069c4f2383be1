"""``dmask mask``: the model's command line (``models.cli``) with DICOM in, DICOM out.

Why here and not in models/: a DICOM file is masked frame by frame by the model, but its header is
de-identified (PS3.15 Basic Profile) with the deployment's keys (DMASK_HMAC_KEY), with the same
pseudonym, date-shift and UID keys as the worker (``workers.runner.mask_dicom``), so one study masked
either way gets the same identifiers; those keys and that profile belong to the product, and models/
imports nothing from services/ or workers/.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from models.cli import mask_command as model_mask_command


def mask_dicom_file(src: Path, dst: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every frame masked by the same model, the header de-identified with the keys of the settings."""
    from models.api import MaskingError, get_model
    from services.dicom import DeidKeys, DeidOptions, DicomError, HmacUidMapper, mask_dicom
    from services.dicom.uids import service_uid_key
    from services.settings import get_settings

    model = get_model(args.device, args.batch)
    key = get_settings().hmac_key.get_secret_value().encode()
    try:
        mask_dicom(
            src,
            dst,
            mask_frames=model.mask_frames,
            options=DeidOptions(),
            keys=DeidKeys.derive(key, args.record_id),
            uid_map=HmacUidMapper(service_uid_key(key)),
            frames_synthetic=model.renders_whole_frames,
        )
    except DicomError as exc:
        raise MaskingError(str(exc)) from exc
    return model.last_metrics or {}


def mask_command(argv: list[str] | None = None) -> int:
    return model_mask_command(argv, dicom=mask_dicom_file)
