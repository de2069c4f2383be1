"""IOD knowledge: which attributes an output IOD requires (Type 1/2), from the standard's tables.

Why: PS3.15 compound actions (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) depend on whether the attribute is Type 1,
2 or 3 in the IOD being written, and the output must stay a conformant instance. The module/attribute
tables come from highdicom's bundled copy of the standard (``highdicom/_standard/*.json``, MIT,
extracted from the DICOM standard), so this works offline.

:func:`check_iod` is a structural IOD check (mandatory modules' Type 1 present and non-empty, Type 2
present; the same for user/conditional modules that are present): it is what the tests run on every
output because ``dicom-validator`` needs the standard's DocBook files, which it downloads at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

_TYPE_RANK = {"1": 5, "1C": 4, "2": 3, "2C": 2, "3": 1}


@lru_cache(1)
def _standard() -> tuple[dict[str, str], dict[str, list[dict[str, str]]], dict[str, list[dict[str, Any]]]]:
    base = resources.files("highdicom") / "_standard"
    sop_iod = json.loads((base / "sop_class_iod_map.json").read_text())
    iod_modules = json.loads((base / "iod_module_map.json").read_text())
    module_attrs = json.loads((base / "module_attribute_map.json").read_text())
    return sop_iod, iod_modules, module_attrs


@dataclass(frozen=True)
class AttributeRule:
    type: str  # "1", "1C", "2", "2C" or "3"
    module: str
    module_usage: str  # "M", "U" (user optional) or "C" (conditional)


@lru_cache(64)
def attribute_rules(sop_class_uid: str) -> dict[tuple[tuple[str, ...], str], AttributeRule]:
    """(sequence keyword path, keyword) -> strongest rule over the IOD's modules; {} if unknown IOD."""
    sop_iod, iod_modules, module_attrs = _standard()
    iod = sop_iod.get(sop_class_uid)
    if iod is None:
        return {}
    rules: dict[tuple[tuple[str, ...], str], AttributeRule] = {}
    for mod in iod_modules.get(iod, []):
        usage = mod["usage"]
        for attr in module_attrs.get(mod["key"], []):
            key = (tuple(attr["path"]), attr["keyword"])
            rule = AttributeRule(attr["type"], mod["key"], usage)
            old = rules.get(key)
            # A mandatory module's requirement wins over an optional module's.
            if old is None or (usage == "M", _TYPE_RANK.get(rule.type, 0)) > (
                old.module_usage == "M",
                _TYPE_RANK.get(old.type, 0),
            ):
                rules[key] = rule
    return rules


def attribute_type(sop_class_uid: str, path: tuple[str, ...], keyword: str) -> str | None:
    """Type of ``keyword`` at ``path`` in the IOD of ``sop_class_uid`` (None: not in the IOD)."""
    rule = attribute_rules(sop_class_uid).get((path, keyword))
    return rule.type if rule else None


def is_known_sop_class(sop_class_uid: str) -> bool:
    return sop_class_uid in _standard()[0]


def _modules(sop_class_uid: str) -> list[dict[str, str]]:
    sop_iod, iod_modules, _ = _standard()
    return iod_modules.get(sop_iod.get(sop_class_uid, ""), [])


def missing_type2(ds: Dataset, sop_class_uid: str) -> list[str]:
    """Top-level Type 2 keywords of the IOD's mandatory modules that ``ds`` lacks."""
    _, _, module_attrs = _standard()
    out = []
    for mod in _modules(sop_class_uid):
        if mod["usage"] != "M":
            continue
        for attr in module_attrs.get(mod["key"], []):
            kw = attr["keyword"]
            if not attr["path"] and attr["type"] == "2" and tag_for_keyword(kw) and kw not in ds:
                out.append(kw)
    return sorted(set(out))


def check_iod(ds: Dataset, sop_class_uid: str | None = None) -> list[str]:
    """Problems with ``ds`` against its IOD's Type 1/2 requirements (top level; [] = none found).

    Mandatory modules are always checked; user-optional and conditional modules only when one of
    their attributes is present (their conditions are free text in the standard). Conditional types
    (1C/2C) are not checked."""
    sop = sop_class_uid or str(ds.get("SOPClassUID", ""))
    if not is_known_sop_class(sop):
        return [f"unknown SOP Class {sop}"]
    _, _, module_attrs = _standard()
    mods = _modules(sop)
    top = {
        m["key"]: [
            a for a in module_attrs.get(m["key"], []) if not a["path"] and tag_for_keyword(a["keyword"])
        ]
        for m in mods
    }
    owners: dict[str, int] = {}
    for attrs in top.values():
        for a in attrs:
            owners[a["keyword"]] = owners.get(a["keyword"], 0) + 1
    problems = []
    for mod in mods:
        attrs = top[mod["key"]]
        # An optional module is "present" when an attribute that only it defines is present
        # (attributes shared by several modules, e.g. PixelSpacing, say nothing about which one).
        if mod["usage"] != "M" and not any(a["keyword"] in ds and owners[a["keyword"]] == 1 for a in attrs):
            continue
        for attr in attrs:
            kw, typ = attr["keyword"], attr["type"]
            if typ == "1":
                if kw not in ds:
                    problems.append(f"{mod['key']}: Type 1 {kw} missing")
                elif ds[kw].is_empty:
                    problems.append(f"{mod['key']}: Type 1 {kw} empty")
            elif typ == "2" and kw not in ds:
                problems.append(f"{mod['key']}: Type 2 {kw} missing")
    return problems
