"""Pass 1 of the mask: find every face in every frame and follow it through the video.

Faces are detected in every frame (so a bystander walking in is masked at once); each face's mesh
continues its track by overlap with the previous frame. A face the detector misses is looked for again
in the region its mesh had in the previous frame, and a track missed entirely is carried for up to
``carry_frames`` frames on its last landmarks. Fail-closed decisions are made here: a frame where a
detected face could not be landmarked confidently is marked for blanking.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from models.perception import FacePerception
from models.perception.roi import bbox
from models.perception.types import FaceLandmarks, Roi
from models.template import EYE_INNER, EYE_OUTER, LOWER_LID, UPPER_LID

# The first 16 of an eye reader's 71 eye-contour points (the attention mesh's eye head or the iris
# network: one topology) are these face-mesh points (MediaPipe's refinement table), eye 0 = subject's
# right eye: outer corner, lower lid, inner corner, upper lid, both lids outer -> inner. The same
# points as template.EYE_RING, whose upper lid runs back so that it walks around the eye.
REFINED_RING = tuple((EYE_OUTER[e], *LOWER_LID[e], EYE_INNER[e], *UPPER_LID[e]) for e in range(2))
RING_CORNERS = (0, 1 + len(LOWER_LID[0]))  # where the outer and inner corner sit in the ring


@dataclass
class FaceObservation:
    """One face in one frame, landmarks refined and ready for reconstruction."""

    points: np.ndarray  # (468, 3) mesh with the eye rings replaced by the eye reader's contour
    iris: np.ndarray  # (2, 5, 3) iris points, z aligned with the mesh
    presence: float
    carried: bool = False  # True when copied from an earlier frame because the face was missed


# Frames in the largest landmark block. A track's landmarks live in whole float32 blocks, so a 30-minute
# video (54,000 frames, 5.6 KiB of landmarks each) keeps ~300 MiB of numbers and no per-frame objects,
# and growing a track never copies it. Blocks start small, each new one as large as all before it, up to
# this size: a long video has hundreds of short spurious tracks (a few frames each), and a full block for
# each (5.9 MiB then) was what made memory grow with video length. The growing blocks fill exactly the first
# LANDMARK_BLOCK frames, so every later block starts at a multiple of it and a reader that walks a track
# in chunks of LANDMARK_BLOCK frames (reconstruct.py) gets views, not copies, after the first chunk.
LANDMARK_BLOCK = 1024
FIRST_LANDMARK_BLOCK = 16


class TrackLandmarks:
    """A track's landmarks frame by frame, in order: the only thing of the input that pass 2 reads."""

    def __init__(self) -> None:
        self._points: list[np.ndarray] = []  # blocks of (size, 468, 3)
        self._iris: list[np.ndarray] = []  # blocks of (size, 2, 5, 3)
        self._presence: list[np.ndarray] = []
        self._frames: list[np.ndarray] = []
        self._carried: list[np.ndarray] = []
        self._starts: list[int] = []  # position of each block's first frame
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def held_bytes(self) -> int:
        """Memory the blocks hold, used or not."""
        blocks = (self._points, self._iris, self._presence, self._frames, self._carried)
        return sum(b.nbytes for kind in blocks for b in kind)

    def _locate(self, pos: int) -> tuple[int, int]:
        block = bisect_right(self._starts, pos) - 1
        return block, pos - self._starts[block]

    def append(self, frame: int, obs: FaceObservation) -> None:
        if not self._points or self._n - self._starts[-1] == len(self._frames[-1]):
            size = min(LANDMARK_BLOCK, max(FIRST_LANDMARK_BLOCK, self._n))  # _n: all blocks so far are full
            self._starts.append(self._n)
            self._points.append(np.empty((size, 468, 3), dtype=np.float32))
            self._iris.append(np.empty((size, 2, 5, 3), dtype=np.float32))
            self._presence.append(np.empty(size, dtype=np.float32))
            self._frames.append(np.empty(size, dtype=np.int64))
            self._carried.append(np.empty(size, dtype=bool))
        block, k = len(self._points) - 1, self._n - self._starts[-1]
        self._points[block][k] = obs.points
        self._iris[block][k] = obs.iris
        self._presence[block][k] = obs.presence
        self._frames[block][k] = frame
        self._carried[block][k] = obs.carried
        self._n += 1

    def at(self, pos: int) -> FaceObservation:
        """The ``pos``-th observation (views into the blocks, not copies)."""
        block, k = self._locate(pos)
        return FaceObservation(
            points=self._points[block][k],
            iris=self._iris[block][k],
            presence=float(self._presence[block][k]),
            carried=bool(self._carried[block][k]),
        )

    def last(self) -> FaceObservation:
        return self.at(self._n - 1)

    def last_frame(self) -> int:
        return int(self._frames[-1][self._n - 1 - self._starts[-1]]) if self._n else -1

    def points(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, 468, 3) landmarks of positions lo..hi-1 (a view when they lie in one block)."""
        return self._range(self._points, lo, hi)

    def iris(self, lo: int, hi: int) -> np.ndarray:
        return self._range(self._iris, lo, hi)

    @property
    def frames(self) -> np.ndarray:
        return self._range(self._frames, 0, self._n).copy()

    @property
    def carried(self) -> np.ndarray:
        return self._range(self._carried, 0, self._n).copy()

    def _range(self, blocks: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
        if hi <= lo:
            return blocks[0][:0] if blocks else np.empty(0)
        first, last = self._locate(lo)[0], self._locate(hi - 1)[0]
        parts = [
            blocks[b][max(lo - self._starts[b], 0) : min(hi - self._starts[b], len(blocks[b]))]
            for b in range(first, last + 1)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass
class Track:
    id: int
    first: int
    landmarks: TrackLandmarks = field(default_factory=TrackLandmarks)
    missed: int = 0

    def last(self) -> FaceObservation:
        return self.landmarks.last()


@dataclass
class Analysis:
    """What pass 1 found: tracks of faces, and per frame the faces it could not confirm (which frames
    that blanks is decided once the patient is known: models/failclosed.py)."""

    height: int
    width: int
    n_frames: int
    tracks: list[Track]
    unconfirmed: list[np.ndarray]  # per frame, (k, 4) boxes of confident detections without a confident mesh
    faces_per_frame: np.ndarray  # (n_frames,) int


def refine(face: FaceLandmarks) -> FaceObservation:
    """Replace the mesh's eye rings by the eye reader's finer eyelid contour (x, y), as the
    reference pipeline does, except the eye corners, which are the mean of the contour's and the mesh's;
    and put the iris points at the depth of their eye's ring.

    Why the corners are shared: the contour's corners slide with the iris. On an eye turned under still
    lids (the squint phantom, ``tools/phantoms.rotate_eyeball``) they moved a third of the iris's shift
    (1.0-3.4 px of 4.6-6.4) while the mesh's moved under a pixel, so a gaze read between the contour's
    corners lost a third of a squint or a nystagmus. On real gaze shifts the contour's corners followed
    the gaze 0.2 more than the independent reader's (dlib's), the mesh's as much as dlib's. Yet the
    contour's corners carry the small per-frame motion that the reader shares on a still gaze, and the
    mesh's alone read that worse (models/README.md, "Measured (2026-12-07, seventeenth session)"): the
    mean keeps both, and halves the slide."""
    points = face.mesh.astype(np.float32).copy()
    iris = face.iris.astype(np.float32).copy()
    for e, ring in enumerate(REFINED_RING):
        points[list(ring), :2] = face.eye_contours[e, :16, :2]
        for k in RING_CORNERS:
            points[ring[k], :2] = 0.5 * (face.mesh[ring[k], :2] + face.eye_contours[e, k, :2])
        iris[e, :, 2] = points[list(ring), 2].mean()
    return FaceObservation(points=points, iris=iris, presence=float(face.presence))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Runs face perception over frames in batches and links faces into tracks."""

    def __init__(
        self,
        perception: FacePerception,
        batch_size: int = 8,
        min_presence: float = 0.5,
        fail_detection_score: float = 0.5,
        carry_frames: int = 2,
    ) -> None:
        self.perception = perception
        self.batch_size = max(1, batch_size)
        self.min_presence = min_presence
        self.fail_detection_score = fail_detection_score
        self.carry_frames = carry_frames
        self._next_id = 0

    def analyse(
        self, frames: Iterable[np.ndarray], progress: Callable[[int], None] | None = None
    ) -> Analysis:
        tracks: list[Track] = []
        active: list[Track] = []
        unconfirmed: list[np.ndarray] = []
        counts: list[int] = []
        height = width = 0
        index = 0
        for batch in _batched(iter(frames), self.batch_size):
            height, width = batch[0].shape[:2]
            detections = self.perception.detect(batch)
            rois = [[self.perception.roi_from_detection(d) for d in dets] for dets in detections]
            found = self.perception.landmarks(batch, rois, [list(d) for d in detections])
            for frame, dets, faces in zip(batch, detections, found, strict=True):
                good = [f for f in faces if f.presence >= self.min_presence]
                good = _dedupe(good)
                # a confidently detected face whose landmarks failed: it cannot be masked, so it is never
                # drawn; whether the frame is blanked depends on whose face it is (failclosed.decide)
                failed = [
                    d.box for d in dets if d.score >= self.fail_detection_score and not _covered(d.box, good)
                ]
                active, new_tracks = self._link(frame, index, good, active)
                tracks.extend(new_tracks)
                unconfirmed.append(np.asarray(failed, dtype=np.float32).reshape(-1, 4))
                counts.append(sum(1 for t in active if t.landmarks.last_frame() == index))
                index += 1
            if progress is not None:
                progress(index)
        return Analysis(
            height=height,
            width=width,
            n_frames=index,
            tracks=[t for t in tracks if not t.landmarks.carried.all()],
            unconfirmed=unconfirmed,
            faces_per_frame=np.asarray(counts, dtype=np.int64),
        )

    def _link(
        self, frame: np.ndarray, index: int, faces: list[FaceLandmarks], active: list[Track]
    ) -> tuple[list[Track], list[Track]]:
        obs = [refine(f) for f in faces]
        boxes = [bbox(o.points) for o in obs]
        unmatched = set(range(len(obs)))
        still: list[Track] = []
        for track in sorted(active, key=lambda t: t.first):
            prev = bbox(track.last().points)
            best, best_iou = None, 0.3
            for k in unmatched:
                iou = _iou(prev, boxes[k])
                if iou > best_iou:
                    best, best_iou = k, iou
            if best is not None:
                unmatched.discard(best)
                track.landmarks.append(index, obs[best])
                track.missed = 0
                still.append(track)
                continue
            # missed by the detector: look again where the face was
            retry = self._retry(frame, self.perception.roi_from_mesh(track.last().points))
            if retry is not None:
                track.landmarks.append(index, retry)
                track.missed = 0
                still.append(track)
            elif track.missed < self.carry_frames:
                last = track.last()
                track.landmarks.append(index, FaceObservation(last.points, last.iris, last.presence, True))
                track.missed += 1
                still.append(track)
        new_tracks = []
        for k in sorted(unmatched):
            t = Track(id=self._next_id, first=index)
            t.landmarks.append(index, obs[k])
            self._next_id += 1
            new_tracks.append(t)
            still.append(t)
        return still, new_tracks

    def _retry(self, frame: np.ndarray, roi: Roi) -> FaceObservation | None:
        found = self.perception.landmarks([frame], [[roi]], None)[0]
        if found and found[0].presence >= self.min_presence:
            return refine(found[0])
        return None


def _covered(box: np.ndarray, faces: list[FaceLandmarks]) -> bool:
    return any(_iou(box, bbox(f.mesh)) > 0.2 for f in faces)


def _dedupe(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    """Two detections of one face give two meshes on the same spot: keep the more confident."""
    kept: list[FaceLandmarks] = []
    for f in sorted(faces, key=lambda f: -f.presence):
        if all(_iou(bbox(f.mesh), bbox(k.mesh)) < 0.5 for k in kept):
            kept.append(f)
    return kept


def _batched(it: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    while batch := list(islice(it, n)):
        yield batch
