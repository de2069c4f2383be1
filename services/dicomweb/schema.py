"""OpenAPI schema of DICOM JSON (PS3.18 Annex F.2), shared by the STOW, QIDO and metadata answers."""

from __future__ import annotations

# PS3.18 Annex F.2: a data set as JSON, keyed by 8-hex-digit tags, each attribute an object with
# its VR and (when it has one) a Value array.
DICOM_JSON_DATASET: dict[str, object] = {
    "type": "object",
    "propertyNames": {"pattern": "^[0-9A-F]{8}$"},
    "additionalProperties": {
        "type": "object",
        "required": ["vr"],
        "properties": {"vr": {"type": "string", "pattern": "^[A-Z]{2}$"}, "Value": {"type": "array"}},
    },
}
