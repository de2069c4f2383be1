"""The template face every patient is rendered as: MediaPipe's canonical face mesh (Apache-2.0).

Only this geometry is ever rendered, never a patient's fitted shape (Meeus et al. 2023 showed that
rendering each patient's own shape lets masks be linked). The mesh ships inside the package so that
workers run air-gapped; its licence is in ``assets/LICENSE-mediapipe.txt``.

Axes here are the image's: x to the viewer's right, y down, z away from the camera (the OBJ file's y and
z are flipped on load), so that a similarity transform maps it straight onto face-mesh landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

# Face-mesh landmark indices (MediaPipe topology). Eye index 0 = subject's right eye (image left).
EYE_OUTER = (33, 263)
EYE_INNER = (133, 362)
UPPER_LID = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))  # outer -> inner
LOWER_LID = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))  # outer -> inner
# The eye's outline walked once around, as a polygon: outer corner, lower lid (outer -> inner), inner
# corner, upper lid back (inner -> outer). (tracking.REFINED_RING lists the same points in the eye
# readers' contour order, both lids outer -> inner.)
EYE_RING = tuple((EYE_OUTER[e], *LOWER_LID[e], EYE_INNER[e], *reversed(UPPER_LID[e])) for e in range(2))
BROWS = (
    (70, 63, 105, 66, 107, 55, 65, 52, 53, 46),
    (300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
# Points that move little with expression: used for the rigid head-pose fit.
RIGID = (
    1,
    4,
    5,
    6,
    168,
    197,
    195,
    9,
    8,
    10,
    151,
    33,
    133,
    263,
    362,
    127,
    356,
    234,
    454,
    93,
    323,
    98,
    327,
    122,
    351,
    188,
    412,
    245,
    465,
    116,
    345,
    117,
    346,
    111,
    340,
    143,
    372,
    21,
    251,
    54,
    284,
    103,
    332,
    67,
    297,
    109,
    338,
)
IRIS_DIAMETER_MM = 11.7  # population mean horizontal visible iris diameter, the ruler for mm metrics


@dataclass(frozen=True)
class CanonicalFace:
    vertices: np.ndarray  # (468, 3) image axes, canonical units (about cm)
    uvs: np.ndarray  # (468, 2)
    triangles: np.ndarray  # (F, 3) skin triangles: eye openings and mouth opening removed
    all_triangles: np.ndarray  # (898, 3) the full mesh as shipped

    @property
    def iris_diameter(self) -> float:
        """Template iris diameter in canonical units, from the template's own eye width: the ratio of
        visible iris diameter to palpebral fissure width (about 11.7 / 28) of an average adult eye."""
        widths = [
            float(np.linalg.norm(self.vertices[o, :2] - self.vertices[i, :2]))
            for o, i in zip(EYE_OUTER, EYE_INNER, strict=True)
        ]
        return float(np.mean(widths)) * IRIS_DIAMETER_MM / 28.0


def _parse_obj(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    verts: list[list[float]] = []
    uv_table: list[list[float]] = []
    faces: list[list[int]] = []
    uv_of_vertex: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(p) for p in parts[1:4]])
        elif parts[0] == "vt":
            uv_table.append([float(p) for p in parts[1:3]])
        elif parts[0] == "f":
            corner = [p.split("/") for p in parts[1:4]]
            faces.append([int(c[0]) - 1 for c in corner])
            for c in corner:
                uv_of_vertex[int(c[0]) - 1] = int(c[1]) - 1
    v = np.asarray(verts, dtype=np.float32)
    uv = np.asarray([uv_table[uv_of_vertex[i]] for i in range(len(verts))], dtype=np.float32)
    return v, uv, np.asarray(faces, dtype=np.int64)


def _holes(triangles: np.ndarray) -> np.ndarray:
    """Triangles that close the eye and mouth openings (all three corners on the opening's rim)."""
    hole = np.zeros(len(triangles), dtype=bool)
    for rim in (*EYE_RING, LIPS_INNER):
        hole |= np.isin(triangles, rim).all(axis=1)
    return hole


@lru_cache(maxsize=1)
def load_canonical_face() -> CanonicalFace:
    text = resources.files("models").joinpath("assets/canonical_face_model.obj").read_text()
    v, uv, tris = _parse_obj(text)
    v = v * np.array([1.0, -1.0, -1.0], dtype=np.float32)  # OBJ (y up, z out) -> image axes
    # Flipping two axes keeps the handedness, so the winding seen from the camera stays CCW in a
    # y-up view, i.e. clockwise in image coordinates; the rasteriser is winding-agnostic anyway.
    skin = tris[~_holes(tris)]
    return CanonicalFace(vertices=v, uvs=uv, triangles=skin, all_triangles=tris)
