"""Run the ``dicom-validator`` package offline.

``dicom-validator`` (``validate_iods``) reads the standard's DocBook parts 3/4/6, which it downloads
from the NEMA site on first use and caches as JSON; the workers have no network, so its own loader
fails ("Failed to get DICOM editions"). Its validation engine (``IODValidator``) only needs a
``DicomInfo`` (dictionary, IOD -> modules, module -> attributes). We build that from data that ships
with installed packages: highdicom's extraction of PS3.3 (IOD/module/attribute types) and pydicom's
PS3.6 dictionary. What is lost compared with the DocBook route: the free-text conditions of 1C/2C
attributes and conditional modules (none are in highdicom's data), and enumerated values, so those
are not checked; Type 1/2/3 presence and emptiness, nested sequences included, and VR conformance of
values are.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydicom.datadict import DicomDictionary, tag_for_keyword

from .iod import _standard


def _tag_key(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@lru_cache(1)
def dicom_info() -> Any:
    """A ``dicom_validator.validator.dicom_info.DicomInfo`` built offline (see module doc)."""
    from dicom_validator.validator.dicom_info import DicomInfo

    sop_iod, iod_modules, module_attrs = _standard()

    dictionary = {
        _tag_key(tag): {"name": name, "vr": vr, "vm": vm, "prop": retired}
        for tag, (vr, vm, name, retired, _kw) in DicomDictionary.items()
    }
    modules: dict[str, dict[str, dict]] = {}
    for key, attrs in module_attrs.items():
        root: dict[str, dict] = {}
        for attr in attrs:
            tag = tag_for_keyword(attr["keyword"])
            if tag is None:
                continue
            node = root
            ok = True
            for kw in attr["path"]:
                parent = tag_for_keyword(kw)
                if parent is None or _tag_key(parent) not in node:
                    ok = False
                    break
                node = node[_tag_key(parent)].setdefault("items", {})
            if ok:
                node[_tag_key(tag)] = {"type": attr["type"]}
        modules[key] = root
    iods: dict[str, dict[str, Any]] = {
        sop: {
            "title": iod,
            "modules": {m["key"]: {"ref": m["key"], "use": m["usage"]} for m in iod_modules.get(iod, [])},
            "group_macros": {},
        }
        for sop, iod in sop_iod.items()
    }
    return DicomInfo(dictionary, iods, modules)


def validate_iod_file(path: Path) -> list[str]:
    """Errors ``dicom-validator``'s IOD validator reports for ``path`` ([] = valid)."""
    from dicom_validator.validator.dicom_file_validator import DicomFileValidator

    validator = DicomFileValidator(dicom_info(), logging.CRITICAL, suppress_vr_warnings=False)
    results = validator.validate(str(path))
    problems: list[str] = []
    for result in results.values():
        status = getattr(result, "status", None)
        if status is not None and getattr(status, "name", "") not in ("Passed", "Failed"):
            problems.append(f"status {status.name}")
        for module, errors in (getattr(result, "module_errors", None) or {}).items():
            for tag, err in errors.items():
                code = getattr(getattr(err, "code", None), "name", str(err))
                context = getattr(err, "context", None)
                problems.append(f"{module}: {tag} {code}" + (f" {context}" if context else ""))
        if getattr(result, "errors", 0) and not problems:
            problems.append(f"{result.errors} errors")
    return problems
