"""The digital mask, frame by frame: perceive, reconstruct, render the template, measure the eyes.

Two passes. Pass 1 (tracking) runs face perception over every frame and keeps only landmarks. Pass 2
reconstructs each face track (pose, expression motion, eye state) and renders every output frame from
those numbers alone. The input pixels are never read in pass 2, so an output frame cannot contain
anything of the input but the motion and measurements we chose to carry.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from models.avatar import FaceShape, drive_eyes, eye_plate_coords, posed_vertices
from models.compose import Appearance, PosedFace, render_faces
from models.eyes import EyeState
from models.failclosed import FailClosed, decide
from models.metrics import build_metrics
from models.perception import FacePerception
from models.perception.roi import bbox
from models.reconstruct import TrackReconstruction, reconstruct
from models.tracking import Analysis, FaceTracker


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class MaskedSequence:
    """Result of pass 1 + reconstruction; frames are rendered on demand by :meth:`DigitalMask.render`."""

    analysis: Analysis
    tracks: list[TrackReconstruction]
    patient: TrackReconstruction | None
    fps: float | None
    appearance: Appearance
    fail_closed: FailClosed

    @property
    def n_frames(self) -> int:
        return self.analysis.n_frames

    @property
    def frames_blanked(self) -> int:
        return int(self.fail_closed.blank.sum())

    @property
    def bystanders_not_drawn(self) -> int:
        """Unconfirmed faces (not the patient's) left undrawn, summed over frames."""
        return int(self.fail_closed.bystanders.sum())

    def metrics(self) -> dict[str, Any]:
        return build_metrics(
            self.patient,
            self.n_frames,
            self.fps,
            self.frames_blanked,
            self.analysis.faces_per_frame,
            self.fail_closed.bystanders,
        )


class DigitalMask:
    """The masking model, loaded once per process (weights, template, device)."""

    # Every output frame is drawn from numbers: template faces on a plain background, or black (see
    # ``render``). No input pixel reaches it, so neither does text burned into the input. The DICOM path
    # may then write Burned In Annotation "NO" and claim the Clean Pixel Data option (113101).
    renders_whole_frames: ClassVar[bool] = True

    def __init__(
        self,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        detector: str = "full",
        appearance_seed: int | None = None,
        fit_iris: bool = True,
    ) -> None:
        """``appearance_seed`` fixes the per-sequence rendering nuisances (tests, reproducible runs);
        by default each photo or video gets a fresh draw from the OS's random source. ``fit_iris``
        fits each iris centre to the picture (FacePerception says why); off, the networks' reading."""
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.perception = FacePerception(device=self.device, detector=detector, fit_iris=fit_iris)  # type: ignore[arg-type]
        self.tracker = FaceTracker(self.perception, batch_size=batch_size)
        self.last_metrics: dict[str, Any] | None = None
        self.last_blanked = 0
        seed = appearance_seed if appearance_seed is not None else secrets.randbits(128)
        self._rng = np.random.default_rng(seed)

    def analyse(
        self,
        frames: Iterable[np.ndarray],
        fps: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> MaskedSequence:
        """Pass 1 and reconstruction. ``frames`` are RGB uint8 arrays of one size."""
        analysis = self.tracker.analyse(frames, progress)
        recs = [reconstruct(t, self.device) for t in analysis.tracks]
        patient = max(recs, key=lambda r: (len(r.frames), r.face_size), default=None)
        look = Appearance.random(self._rng)
        boxes: dict[int, np.ndarray] = {}
        if patient is not None:
            marks = patient.landmarks
            boxes = {
                int(frame): bbox(marks.points(pos, pos + 1)[0])
                for pos, frame in enumerate(patient.frames)
                if not patient.carried[pos]
            }
        window = round(fps) if fps else 0  # about a second of video
        return MaskedSequence(
            analysis=analysis,
            tracks=recs,
            patient=patient,
            fps=fps,
            appearance=look,
            fail_closed=decide(analysis.unconfirmed, boxes, window),
        )

    def render(self, seq: MaskedSequence, index: int) -> np.ndarray:
        """Output frame ``index``: the confirmed faces as templates on a plain background, or a black
        frame when the patient's face was present but could not be masked safely (fail closed).
        Unconfirmed bystanders are never drawn (see models/failclosed.py)."""
        a = seq.analysis
        if seq.fail_closed.blank[index]:
            return np.zeros((a.height, a.width, 3), dtype=np.uint8)
        faces = []
        for rec in seq.tracks:
            pos = int(np.searchsorted(rec.frames, index))
            if pos >= len(rec.frames) or rec.frames[pos] != index:
                continue
            faces.append(self._pose_face(rec, pos, seq.appearance.shape))
        return render_faces(faces, a.height, a.width, self.device, seq.appearance)

    def _pose_face(self, rec: TrackReconstruction, pos: int, shape: FaceShape) -> PosedFace:
        e = rec.eyes
        state = EyeState(
            width=e.width[pos],
            upper=e.upper[pos],
            lower=e.lower[pos],
            iris_u=e.iris_u[pos],
            iris_v=e.iris_v[pos],
            iris_diameter=e.iris_diameter[pos],
        )
        drive = drive_eyes(state)
        dt = torch.float32
        verts = posed_vertices(
            torch.as_tensor(rec.expression(pos), device=self.device, dtype=dt),
            drive,
            torch.as_tensor(rec.rotation[pos], device=self.device, dtype=dt),
            torch.as_tensor(float(rec.scale[pos]), device=self.device, dtype=dt),
            torch.as_tensor(rec.translation[pos], device=self.device, dtype=dt),
            shape,
        )
        return PosedFace(vertices=verts, eye_coords=eye_plate_coords(drive))

    def mask_frames(self, frames: Iterable[np.ndarray], fps: float | None = None) -> Iterator[np.ndarray]:
        """Frame-level API for callers doing their own I/O (DICOM): all frames are analysed first, then
        masked frames are yielded in order; ``last_metrics`` / ``last_blanked`` are set before the first
        one is yielded."""
        seq = self.analyse(frames, fps)
        self.last_metrics = seq.metrics()
        self.last_blanked = seq.frames_blanked
        for i in range(seq.n_frames):
            yield self.render(seq, i)
