"""Header de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile.

The attribute table (Table E.1-1 with its option columns) is data, ``ps3_15_basic_profile.csv``; its
provenance is in ``tools/gen_profile_table.py``. This module only interprets it:

* ``K`` keep (sequences are still cleaned inside), ``X`` remove, ``Z`` empty, ``D`` dummy value,
  ``U`` keyed UID replacement, ``C`` clean (here: only date shifting for the modified-dates option).
* Compound codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) are resolved with the Type of the attribute in the
  IOD being written (``iod.attribute_type``): Type 1 -> D (or U*), Type 2 -> Z, otherwise X.
* ``D`` on a sequence: cleaned in place when the IOD requires it, removed otherwise (a dummy item
  cannot be invented generically).
* Options: Retain Longitudinal Temporal Information (full dates, or dates shifted by a keyed
  per-record offset) and Retain Patient Characteristics (``K`` rows only; ``C`` rows, e.g. Allergies,
  are free text we cannot clean, so they keep the basic action).
* Always: private attributes, curves (50xx) and overlays (60xx) removed; Patient ID/Name replaced by a
  keyed pseudonym of the record ID; Patient Identity Removed, De-identification Method (Code Sequence
  with exactly the CID 7050 codes applied) set.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from . import iod
from .uids import UidMapper

TABLE_FILE = "ps3_15_basic_profile.csv"
METHOD_PREFIX = "DigitalMask"

# CID 7050 De-identification Method (scheme DCM).
CODE_MEANINGS = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}


@dataclass(frozen=True)
class ProfileRow:
    tag: str  # "(0010,0010)", or a wildcard row "(60XX,3000)", "(GGGG,EEEE)"
    keyword: str
    name: str
    basic: str
    rtn_patient_characteristics: str
    rtn_long_full_dates: str
    rtn_long_modified_dates: str


@lru_cache(1)
def profile_table() -> dict[int, ProfileRow]:
    """Single-tag rows of Table E.1-1 keyed by tag (wildcard rows are handled by group rules)."""
    text = (resources.files(__package__) / TABLE_FILE).read_text()
    out: dict[int, ProfileRow] = {}
    for r in csv.DictReader(text.splitlines()):
        tag = r["tag"].strip("()").replace(",", "")
        if not all(c in "0123456789ABCDEF" for c in tag):
            continue
        out[int(tag, 16)] = ProfileRow(
            r["tag"],
            r["keyword"],
            r["name"],
            r["basic"],
            r["rtn_patient_characteristics"],
            r["rtn_long_full_dates"],
            r["rtn_long_modified_dates"],
        )
    return out


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 options to apply on top of the Basic Profile.

    Clean Recognizable Visual Features is always applied (the mask). Clean Pixel Data is claimed only
    when the caller's masking contract says frames are fully synthetic (see ``mask_dicom``)."""

    retain_longitudinal: Literal["none", "full", "shifted"] = "none"
    retain_patient_characteristics: bool = False
    patient_name: Literal["pseudonym", "empty"] = "pseudonym"
    max_date_shift_days: int = 3650


@dataclass(frozen=True)
class DeidKeys:
    """Secrets and the record the instance belongs to.

    ``record_id`` is the service's own record/patient key (never written out); the pseudonym and the
    date shift are HMACs of it, so all instances of one record get the same Patient ID and the same
    shift, and nobody without the keys can link them back."""

    pseudonym_key: bytes
    date_shift_key: bytes
    record_id: str

    @classmethod
    def derive(cls, master_key: bytes, record_id: str) -> DeidKeys:
        """Derive independent sub-keys from one service secret."""

        def sub(label: bytes) -> bytes:
            return hmac.new(master_key, label, hashlib.sha256).digest()

        return cls(sub(b"dmask/pseudonym/v1"), sub(b"dmask/date-shift/v1"), record_id)

    def pseudonym(self) -> str:
        """Patient ID / Name pseudonym: 'DM' + 30 hex digits of HMAC-SHA256(key, record_id)."""
        digest = hmac.new(self.pseudonym_key, self.record_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return "DM" + digest[:30].upper()

    def date_shift_days(self, max_days: int) -> int:
        """Keyed per-record shift, 1..max_days days into the past."""
        digest = hmac.new(self.date_shift_key, self.record_id.encode("utf-8"), hashlib.sha256).digest()
        return 1 + int.from_bytes(digest[:8], "big") % max(max_days, 1)


def applied_method_codes(options: DeidOptions, frames_synthetic: bool) -> list[str]:
    """The CID 7050 codes describing exactly what :func:`deidentify` + masking did."""
    codes = ["113100"]
    if frames_synthetic:
        codes.append("113101")
    codes.append("113102")
    if options.retain_longitudinal == "full":
        codes.append("113106")
    elif options.retain_longitudinal == "shifted":
        codes.append("113107")
    if options.retain_patient_characteristics:
        codes.append("113108")
    return codes


def _dummy(vr: str) -> object:
    return {
        "AE": "ANON",
        "AS": "000Y",
        "CS": "ANONYMIZED",
        "DA": "19000101",
        "DT": "19000101000000",
        "TM": "000000",
        "DS": "0",
        "IS": "0",
        "PN": "ANONYMIZED",
        "UR": "urn:dmask:anonymized",
        "US": 0,
        "SS": 0,
        "UL": 0,
        "SL": 0,
        "FL": 0.0,
        "FD": 0.0,
        "SV": 0,
        "UV": 0,
        "AT": None,
        "OB": b"\x00\x00",
        "OW": b"\x00\x00",
        "OD": b"",
        "OF": b"",
        "OL": b"",
        "OV": b"",
        "UN": b"\x00\x00",
    }.get(vr, "ANONYMIZED")


class _Deidentifier:
    def __init__(
        self,
        sop_class_uid: str,
        options: DeidOptions,
        keys: DeidKeys,
        uid_map: UidMapper,
    ) -> None:
        self.sop = sop_class_uid
        self.options = options
        self.uid_map = uid_map
        self.table = profile_table()
        self.shift = (
            keys.date_shift_days(options.max_date_shift_days)
            if options.retain_longitudinal == "shifted"
            else 0
        )

    def action(self, row: ProfileRow, path: tuple[str, ...], keyword: str) -> str:
        o = self.options
        if o.retain_longitudinal == "full" and row.rtn_long_full_dates == "K":
            return "K"
        if o.retain_longitudinal == "shifted" and row.rtn_long_modified_dates == "C":
            return "C"
        if o.retain_patient_characteristics and row.rtn_patient_characteristics == "K":
            return "K"
        code = row.basic
        if "/" not in code:
            return code
        typ = iod.attribute_type(self.sop, path, keyword) or "3"
        choices = code.split("/")
        if typ in ("1", "1C"):
            for c in ("D", "U*", "Z"):
                if c in choices:
                    return "U" if c == "U*" else c
        if typ in ("2", "2C"):
            for c in ("Z", "D"):
                if c in choices:
                    return c
        return "X" if "X" in choices else choices[0]

    def clean(self, ds: Dataset, path: tuple[str, ...] = ()) -> None:
        for elem in list(ds):
            tag = elem.tag
            group = tag.group
            if tag.is_private or 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                del ds[tag]
                continue
            if group == 0xFFFA or group == 0xFFFC:  # digital signatures, trailing padding
                del ds[tag]
                continue
            row = self.table.get(int(tag))
            keyword = keyword_for_tag(tag) or ""
            act = self.action(row, path, keyword) if row is not None else "K"
            self.apply(ds, elem, tag, act, path, keyword)

    def apply(
        self, ds: Dataset, elem: DataElement, tag: BaseTag, act: str, path: tuple[str, ...], keyword: str
    ) -> None:
        vr = elem.VR
        if act == "X":
            del ds[tag]
        elif act == "Z":
            ds[tag] = DataElement(tag, vr, Sequence() if vr == "SQ" else None)
        elif act == "K" or (act == "D" and vr == "SQ"):
            if vr == "SQ":
                if act == "D" and iod.attribute_type(self.sop, path, keyword) not in ("1", "1C"):
                    del ds[tag]
                    return
                for item in elem.value or []:
                    self.clean(item, (*path, keyword))
        elif act == "U":
            if vr == "SQ":
                for item in elem.value or []:
                    self.clean(item, (*path, keyword))
            elif vr == "UI":
                elem.value = self.map_uids(elem.value)
            else:
                del ds[tag]
        elif act == "D":
            if vr == "UI":
                elem.value = self.map_uids(elem.value)
            elif vr == "AT":
                ds[tag] = DataElement(tag, vr, None)
            else:
                ds[tag] = DataElement(tag, vr, _dummy(vr))
        elif act == "C":
            self.shift_dates(ds, elem, tag)
        else:  # unknown code in the table: the safe reading is removal
            del ds[tag]

    def map_uids(self, value: object) -> object:
        if value is None or value == "":
            return value
        if isinstance(value, str):
            return self.uid_map.map(value)
        return [self.uid_map.map(str(v)) for v in value]  # type: ignore[attr-defined]

    def shift_dates(self, ds: Dataset, elem: DataElement, tag: BaseTag) -> None:
        """Modified-dates option: DA/DT shifted back by the record's offset; TM and offsets kept."""
        if elem.VR not in ("DA", "DT") or elem.value in (None, ""):
            if elem.VR not in ("TM", "SH", "DA", "DT"):
                del ds[tag]  # a 'C' we don't know how to clean
            return
        values = [str(v) for v in (elem.value if elem.VM > 1 else [elem.value])]
        shifted = []
        for v in values:
            s = _shift_one(v, self.shift)
            if s is None:
                del ds[tag]
                return
            shifted.append(s)
        ds[tag] = DataElement(tag, elem.VR, shifted if len(shifted) > 1 else shifted[0])


def _shift_one(value: str, days: int) -> str | None:
    value = value.strip()
    if len(value) < 8 or not value[:8].isdigit():
        return None
    try:
        d = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8])) - dt.timedelta(days=days)
    except ValueError:
        return None
    return d.strftime("%Y%m%d") + value[8:]


def deidentify(
    ds: Dataset,
    *,
    sop_class_uid: str,
    options: DeidOptions,
    keys: DeidKeys,
    uid_map: UidMapper,
    frames_synthetic: bool,
    method_text: str,
) -> list[str]:
    """De-identify ``ds`` in place for output as ``sop_class_uid``; returns the CID 7050 codes applied."""
    cleaner = _Deidentifier(sop_class_uid, options, keys, uid_map)
    cleaner.clean(ds)
    pseudonym = keys.pseudonym()
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym if options.patient_name == "pseudonym" else ""
    ds.PatientIdentityRemoved = "YES"
    codes = applied_method_codes(options, frames_synthetic)
    ds.DeidentificationMethod = [method_text[:64]] + [CODE_MEANINGS[c][:64] for c in codes]
    seq = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = CODE_MEANINGS[code]
        seq.append(item)
    ds.DeidentificationMethodCodeSequence = seq
    ds.LongitudinalTemporalInformationModified = {
        "none": "REMOVED",
        "full": "UNMODIFIED",
        "shifted": "MODIFIED",
    }[options.retain_longitudinal]
    # Keep the output IOD's Type 2 attributes present (empty) where the profile or the source lacks them.
    for kw in iod.missing_type2(ds, sop_class_uid):
        tag = tag_for_keyword(kw)
        if tag is not None:
            vr = dictionary_VR(tag)
            ds[tag] = DataElement(tag, vr, Sequence() if vr == "SQ" else None)
    return codes
