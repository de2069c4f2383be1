"""BlazeFace post-processing as in MediaPipe's face_detection_{short,full}_range graphs.

SSD anchors (SsdAnchorsCalculator), box/keypoint decoding with sigmoid score clipping
(TensorsToDetectionsCalculator) and weighted non-maximum suppression (NonMaxSuppressionCalculator,
WEIGHTED, IoU 0.3). Decoding and thresholding are batched tensor ops; only the few surviving
candidates of each frame go through the (inherently sequential) weighted NMS, on the CPU in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DetectorConfig:
    """Options of one MediaPipe face detector graph."""

    weights: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float
    min_score_thresh: float  # the graph's own default; FacePerception may override
    num_keypoints: int = 6
    score_clipping_thresh: float = 100.0
    nms_iou: float = 0.3
    anchor_offset: float = 0.5


SHORT_RANGE = DetectorConfig(
    weights="face_detection_short_range",
    input_size=128,
    strides=(8, 16, 16, 16),
    interpolated_scale_aspect_ratio=1.0,
    min_score_thresh=0.5,
)
FULL_RANGE = DetectorConfig(
    weights="face_detection_full_range",
    input_size=192,
    strides=(4,),
    interpolated_scale_aspect_ratio=0.0,
    min_score_thresh=0.6,
)


def ssd_anchor_centers(cfg: DetectorConfig) -> np.ndarray:
    """(N, 2) anchor centres (x, y) normalised to [0, 1], in the network's output order.

    With ``fixed_anchor_size`` (as in both face graphs) anchors have unit width/height, so only the
    centres and the number of anchors per cell matter: consecutive layers with the same stride share a
    feature map and contribute one anchor per aspect ratio (1.0) plus one interpolated-scale anchor
    each when ``interpolated_scale_aspect_ratio > 0``."""
    centers: list[np.ndarray] = []
    layer = 0
    n_layers = len(cfg.strides)
    while layer < n_layers:
        stride = cfg.strides[layer]
        per_cell = 0
        while layer < n_layers and cfg.strides[layer] == stride:
            per_cell += 1 + (1 if cfg.interpolated_scale_aspect_ratio > 0 else 0)
            layer += 1
        fm = -(-cfg.input_size // stride)
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        grid = np.stack([(xs + cfg.anchor_offset) / fm, (ys + cfg.anchor_offset) / fm], axis=-1)
        centers.append(np.repeat(grid.reshape(-1, 2), per_cell, axis=0))
    return np.concatenate(centers).astype(np.float32)


def decode(
    regressors: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor, cfg: DetectorConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head outputs -> (boxes (B, N, 4) x0 y0 x1 y1 and keypoints folded in: (B, N, 4 + 2K)
    normalised to the network input, scores (B, N)).

    Box layout of the regressor (reverse_output_order): x_centre, y_centre, w, h, then (x, y) per
    keypoint, all in input pixels relative to the anchor centre."""
    scale = float(cfg.input_size)
    raw = regressors / scale
    cx = raw[..., 0] + anchors[:, 0]
    cy = raw[..., 1] + anchors[:, 1]
    half_w, half_h = raw[..., 2] / 2, raw[..., 3] / 2
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)
    kp = raw[..., 4 : 4 + 2 * cfg.num_keypoints].reshape(*raw.shape[:-1], cfg.num_keypoints, 2)
    kp = (kp + anchors[:, None, :]).flatten(-2)
    clip = cfg.score_clipping_thresh
    scores = torch.sigmoid(logits[..., 0].clamp(-clip, clip))
    return torch.cat([boxes, kp], dim=-1), scores


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(dets: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED NMS: take the best remaining detection, average the coordinates (box and
    keypoints) of every remaining detection overlapping it by IoU > threshold, weighted by score, and
    keep the best score. Why weighted: BlazeFace fires on many neighbouring anchors; averaging them is
    markedly more stable across video frames than picking one."""
    order = np.argsort(-scores, kind="stable")
    dets, scores = dets[order], scores[order]
    out_dets: list[np.ndarray] = []
    out_scores: list[float] = []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        overlap = _iou(dets[top, :4], dets[remaining, :4]) > iou_threshold
        overlap[0] = True
        members = remaining[overlap]
        w = scores[members]
        out_dets.append((dets[members] * w[:, None]).sum(0) / w.sum())
        out_scores.append(float(scores[top]))
        remaining = remaining[~overlap]
    if not out_dets:
        return np.zeros((0, dets.shape[1]), np.float32), np.zeros((0,), np.float32)
    return np.stack(out_dets).astype(np.float32), np.asarray(out_scores, np.float32)
