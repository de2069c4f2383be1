"""Face perception: our PyTorch port of MediaPipe's face detection, face mesh and iris networks."""

from .pipeline import FacePerception
from .types import Detection, FaceLandmarks, Roi

__all__ = ["Detection", "FaceLandmarks", "FacePerception", "Roi"]
