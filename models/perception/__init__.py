"""Face perception: our PyTorch port of MediaPipe's face detection, face mesh and iris networks."""

from .pipeline import FACE_PRESENCE, FacePerception
from .types import Detection, FaceLandmarks, Roi

__all__ = ["FACE_PRESENCE", "Detection", "FaceLandmarks", "FacePerception", "Roi"]
