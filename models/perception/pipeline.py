"""FacePerception: MediaPipe face detection -> face mesh with eyelids and irises, in PyTorch, batched.

Why our own implementation: the masking service needs the MediaPipe networks on CPU and CUDA,
batched across frames and faces, without the mediapipe runtime (no GPU path in its Python wheel,
one frame at a time, per-process graph state). The networks are exact conversions
(see graph.py); the pre/post-processing here follows the reference graphs:
face_detection_{short,full}_range, face_detection_front_detection_to_roi, face_landmark (with
attention), face_landmark_landmarks_to_roi and, for the iris network, iris_landmark_left_and_right.

Why the attention mesh reads the eyes by default: its eye and iris heads see the eye regions of its
own feature map, and on the shared videos the masks read with them carry the pupil and the blinks
markedly better than with the separate iris network (models/README.md, "The attention mesh").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from . import exposure
from . import roi as roi_ops
from .detection import FULL_RANGE, SHORT_RANGE, decode, ssd_anchor_centers, weighted_nms
from .graph import GraphNet, build
from .iris_fit import fit_irises
from .types import Detection, FaceLandmarks, Roi

MESH_SIZE = 192
IRIS_SIZE = 64
NUM_MESH_POINTS = 468
Frames = Sequence[np.ndarray] | np.ndarray
EyeReader = Literal["attention", "iris"]
IRIS_NETWORK_ORDER_EYE1 = (0, 3, 2, 1, 4)


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the square detector input: x_in = x_frame * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float


def _as_frame_list(frames: Frames) -> list[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim == 3:
            return [frames]
        if frames.ndim == 4:
            return list(frames)
        raise ValueError(f"expected HxWx3 or NxHxWx3 frames, got shape {frames.shape}")
    return list(frames)


class FacePerception:
    """Face detection, 468-point face mesh, eyelid contours and iris landmarks for batches of RGB uint8
    frames.

    Coordinates are frame pixels (see roi.py for the exact convention); eye index 0 is the subject's
    right eye. All methods run under ``torch.inference_mode`` and are safe to call from one thread at
    a time."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        detector: Literal["short", "full"] = "full",
        min_detection_score: float = 0.5,
        *,
        zoom_out_fallback: float | None = 2.0,
        num_threads: int | None = None,
        eyes: EyeReader = "attention",
        fit_iris: bool = True,
        antialias: bool = True,
    ) -> None:
        """``zoom_out_fallback``: frames where the detector finds no face are run again shrunk by this
        factor inside the detector input. Why: the full-range model misses faces that fill most of
        the frame (tight portrait crops); shrinking them brings them into its trained size range.
        None disables the second pass. ``num_threads`` sets torch's intra-op threads (process-wide).
        ``eyes`` picks who reads the eyelids and irises: "attention", the attention mesh's own eye and
        iris heads (one network for mesh and eyes), or "iris", the separate iris network on two eye
        crops per face. ``fit_iris`` (the default) moves each iris centre along its eye to where the
        picture's dark disc is (iris_fit.py says why; measured in models/README.md, "The iris fitted to
        the picture"); off, the iris is the networks' own reading, as the reference runtimes give it.
        ``antialias`` (the default): a crop that shrinks the face into a landmark network's input
        averages the frame pixels each crop pixel spans, so a grainy frame from a dim room reaches the
        network with its grain averaged down (roi.crop; models/README.md, "Low light: the grain
        averaged in the crop"); off, crops are bilinear samples as MediaPipe's runtime takes them.
        """
        if detector not in ("short", "full"):
            raise ValueError(f"detector must be 'short' or 'full', not {detector!r}")
        if eyes not in ("attention", "iris"):
            raise ValueError(f"eyes must be 'attention' or 'iris', not {eyes!r}")
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.device = torch.device(device)
        self.detector_config = FULL_RANGE if detector == "full" else SHORT_RANGE
        self.min_detection_score = float(min_detection_score)
        self.zoom_out_fallback = zoom_out_fallback
        self.detector_net: GraphNet = self._prepare(build(self.detector_config.weights))
        self.mesh_net: GraphNet = self._prepare(
            build("face_landmark_with_attention" if eyes == "attention" else "face_landmark")
        )
        self.iris_net: GraphNet | None = self._prepare(build("iris_landmark")) if eyes == "iris" else None
        self.fit_iris = fit_iris
        self.antialias = antialias
        self._anchors = torch.from_numpy(ssd_anchor_centers(self.detector_config)).to(self.device)
        self._eye_flip = torch.tensor(roi_ops.EYE_FLIPPED, device=self.device)

    def _prepare(self, net: GraphNet) -> GraphNet:
        return net.to(self.device)

    # -- frames ---------------------------------------------------------------------------------

    def _frame_tensor(self, frame: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> (1, 3, H, W) float32 in 0..255 on the device; an underexposed frame
        brought to a normal exposure (exposure.py), so that every network reads it as in normal light."""
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
        if frame.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames, got {frame.dtype}")
        if not frame.flags.writeable:  # torch warns on read-only arrays (e.g. from PIL)
            frame = frame.copy()
        levels = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device, non_blocking=True)
        levels = levels.permute(2, 0, 1).unsqueeze(0)
        t = levels.float()
        gain = exposure.exposure_gain(t)
        return exposure.expose_levels(levels, gain) if bool(gain > 1.0) else t

    def _letterbox(self, frame: torch.Tensor, zoom_out: float = 1.0) -> tuple[torch.Tensor, Letterbox]:
        """Fit the frame into the square detector input keeping its aspect ratio, black borders,
        values in [-1, 1] (ImageToTensor keep_aspect_ratio, BORDER_ZERO). ``zoom_out`` > 1 shrinks
        the frame further into the centre of the input."""
        n = self.detector_config.input_size
        _, _, h, w = frame.shape
        s = n / (max(h, w) * zoom_out)
        rw, rh = max(1, round(w * s)), max(1, round(h * s))
        ox, oy = (n - rw) // 2, (n - rh) // 2
        small = F.interpolate(frame, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        canvas = torch.zeros((1, 3, n, n), device=frame.device)
        canvas[:, :, oy : oy + rh, ox : ox + rw] = small
        return canvas / 127.5 - 1.0, Letterbox(rw / w, rh / h, float(ox), float(oy))

    # -- detection ------------------------------------------------------------------------------

    @torch.inference_mode()
    def detect(self, frames: Frames) -> list[list[Detection]]:
        """Every face of every frame with its score (>= min_detection_score), best first."""
        tensors = [self._frame_tensor(f) for f in _as_frame_list(frames)]
        results = self._detect(tensors, 1.0)
        if self.zoom_out_fallback:
            empty = [i for i, r in enumerate(results) if not r]
            if empty:
                retry = self._detect([tensors[i] for i in empty], self.zoom_out_fallback)
                for i, r in zip(empty, retry, strict=True):
                    results[i] = r
        return results

    def _detect(self, tensors: list[torch.Tensor], zoom_out: float) -> list[list[Detection]]:
        if not tensors:
            return []
        boxed = [self._letterbox(t, zoom_out) for t in tensors]
        regressors, logits = self.detector_net(torch.cat([b[0] for b in boxed]))
        decoded, scores = decode(regressors, logits, self._anchors, self.detector_config)
        n = float(self.detector_config.input_size)
        n_points = 2 + self.detector_config.num_keypoints
        results: list[list[Detection]] = []
        for b, (_, lb) in enumerate(boxed):
            keep = scores[b] >= self.min_detection_score
            dets, det_scores = weighted_nms(
                decoded[b][keep].cpu().numpy(), scores[b][keep].cpu().numpy(), self.detector_config.nms_iou
            )
            pts = dets.reshape(len(dets), n_points, 2) * n  # detector input pixels -> frame pixels
            pts[..., 0] = (pts[..., 0] - lb.offset_x) / lb.scale_x
            pts[..., 1] = (pts[..., 1] - lb.offset_y) / lb.scale_y
            results.append(
                [
                    Detection(box=p[:2].reshape(4).copy(), score=float(sc), keypoints=p[2:].copy())
                    for p, sc in zip(pts.astype(np.float32), det_scores, strict=True)
                ]
            )
        return results

    # -- regions --------------------------------------------------------------------------------

    @staticmethod
    def roi_from_detection(det: Detection) -> Roi:
        return roi_ops.roi_from_detection(det)

    @staticmethod
    def roi_from_mesh(mesh: np.ndarray) -> Roi:
        return roi_ops.roi_from_mesh(mesh)

    # -- landmarks ------------------------------------------------------------------------------

    @torch.inference_mode()
    def landmarks(
        self,
        frames: Frames,
        rois: list[list[Roi]],
        detections: list[list[Detection | None]] | None = None,
    ) -> list[list[FaceLandmarks]]:
        """Face mesh + both eyes' iris/contour landmarks for every ROI of every frame, all faces of
        all frames in one batch per network."""
        frame_list = _as_frame_list(frames)
        if len(rois) != len(frame_list):
            raise ValueError(f"{len(frame_list)} frames but ROIs for {len(rois)}")
        if detections is not None and [len(d) for d in detections] != [len(r) for r in rois]:
            raise ValueError("detections must parallel rois")
        counts = [len(r) for r in rois]
        if sum(counts) == 0:
            return [[] for _ in frame_list]

        tensors = [self._frame_tensor(f) if c else None for f, c in zip(frame_list, counts, strict=True)]
        face_rois = [roi_ops.roi_tensor(r, self.device) if r else None for r in rois]

        # face mesh
        mesh_in = torch.cat(
            [
                roi_ops.crop(t, r, MESH_SIZE, antialias=self.antialias)
                for t, r in zip(tensors, face_rois, strict=True)
                if t is not None and r is not None
            ]
        )
        outputs = self.mesh_net(mesh_in / 255.0)
        raw_mesh, presence_logit = outputs[0], outputs[-1]
        all_rois = torch.cat([r for r in face_rois if r is not None])
        mesh = roi_ops.project(raw_mesh.reshape(-1, NUM_MESH_POINTS, 3), all_rois, MESH_SIZE)
        presence = torch.sigmoid(presence_logit.reshape(-1))
        if self.iris_net is None:
            contours, iris = self._attention_eyes(outputs, all_rois)
        else:
            contours, iris = self._iris_network_eyes(tensors, counts, mesh)
        if self.fit_iris:
            iris = self._fit_irises(tensors, counts, contours, iris)

        mesh_np = mesh.cpu().numpy()
        presence_np = presence.cpu().numpy()
        contours_np = contours.cpu().numpy()
        iris_np = iris.cpu().numpy()
        out: list[list[FaceLandmarks]] = []
        k = 0
        for fi, frame_rois in enumerate(rois):
            faces = []
            for j, r in enumerate(frame_rois):
                faces.append(
                    FaceLandmarks(
                        detection=detections[fi][j] if detections is not None else None,
                        roi=r,
                        presence=float(presence_np[k]),
                        mesh=mesh_np[k],
                        eye_contours=contours_np[k],
                        iris=iris_np[k],
                    )
                )
                k += 1
            out.append(faces)
        return out

    def _attention_eyes(
        self, outputs: tuple[torch.Tensor, ...], rois: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eye contours (F, 2, 71, 3) and irises (F, 2, 5, 3) from the attention mesh's heads, in frame
        pixels. Its "left" heads read the image-left eye, the subject's right: our eye 0. The heads
        give x, y only; z is 0 (the mesh's depth is what reconstruction uses)."""
        _, _, left_eye, right_eye, left_iris, right_iris, _ = outputs
        n = rois.shape[0]

        def frame_pixels(left: torch.Tensor, right: torch.Tensor, k: int) -> torch.Tensor:
            xy = torch.stack([left.reshape(n, k, 2), right.reshape(n, k, 2)], dim=1)  # (F, 2, k, 2)
            xyz = F.pad(xy, (0, 1)).reshape(n, 2 * k, 3)
            return roi_ops.project(xyz, rois, MESH_SIZE).reshape(n, 2, k, 3)

        iris = frame_pixels(left_iris, right_iris, 5)
        # the iris network reads eye 1 mirrored, so its boundary points 1 and 3 swap sides; keep that order
        iris[:, 1] = iris[:, 1, list(IRIS_NETWORK_ORDER_EYE1)]
        return frame_pixels(left_eye, right_eye, 71), iris

    def _iris_network_eyes(
        self, tensors: list[torch.Tensor | None], counts: list[int], mesh: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eye contours (F, 2, 71, 3) and irises (F, 2, 5, 3) from the iris network on two eye crops
        per face (the subject's left eye mirrored), in frame pixels."""
        assert self.iris_net is not None
        eye_rois = roi_ops.eye_rois_tensor(mesh)  # (F, 2, 4)
        flip = self._eye_flip.repeat(eye_rois.shape[0])
        eye_in = []
        start = 0
        for t, c in zip(tensors, counts, strict=True):
            if t is None:
                continue
            er = eye_rois[start : start + c].reshape(-1, 4)
            eye_in.append(roi_ops.crop(t, er, IRIS_SIZE, flip[: 2 * c], antialias=self.antialias))
            start += c
        raw_contour, raw_iris = self.iris_net(torch.cat(eye_in) / 255.0)
        flat_eye_rois = eye_rois.reshape(-1, 4)
        contours = roi_ops.project(raw_contour.reshape(-1, 71, 3), flat_eye_rois, IRIS_SIZE, flip)
        iris = roi_ops.project(raw_iris.reshape(-1, 5, 3), flat_eye_rois, IRIS_SIZE, flip)
        return contours.reshape(-1, 2, 71, 3), iris.reshape(-1, 2, 5, 3)

    @staticmethod
    def _fit_irises(
        tensors: list[torch.Tensor | None], counts: list[int], contours: torch.Tensor, iris: torch.Tensor
    ) -> torch.Tensor:
        """Irises (F, 2, 5, 3) with their centres fitted to each face's own frame."""
        parts = []
        start = 0
        for t, c in zip(tensors, counts, strict=True):
            if t is None:
                continue
            rings = contours[start : start + c, :, :16].reshape(-1, 16, 3)
            fitted = fit_irises(t, rings, iris[start : start + c].reshape(-1, 5, 3))
            parts.append(fitted.reshape(c, 2, 5, 3))
            start += c
        return torch.cat(parts)

    @torch.inference_mode()
    def __call__(self, frames: Frames) -> list[list[FaceLandmarks]]:
        """Detect every face, then mesh + iris for each (the single-image reference pipeline)."""
        frame_list = _as_frame_list(frames)
        dets = self.detect(frame_list)
        rois = [[roi_ops.roi_from_detection(d) for d in fd] for fd in dets]
        seeds: list[list[Detection | None]] = [list(fd) for fd in dets]
        return self.landmarks(frame_list, rois, seeds)
