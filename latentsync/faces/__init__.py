"""Faces: landmarks, alignment to the crop the models see, the mouth mask, and paste-back into the frame."""

from .align import FaceAligner, FaceAlignmentError, crop_face
from .landmarks import (
    BACKENDS,
    BackendUnavailableError,
    Face,
    InvalidFrameError,
    LandmarkDetector,
    create_detector,
    select_face,
)
from .mask import DiffusionInputs, diffusion_inputs, fixed_mask
from .paste import paste_back
from .track import FaceTrack, NoFaceError, track_faces

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "DiffusionInputs",
    "Face",
    "FaceAligner",
    "FaceAlignmentError",
    "FaceTrack",
    "InvalidFrameError",
    "LandmarkDetector",
    "NoFaceError",
    "create_detector",
    "crop_face",
    "diffusion_inputs",
    "fixed_mask",
    "paste_back",
    "select_face",
    "track_faces",
]
