"""Faces: landmarks, alignment to the crop the models see, the mouth mask, and paste-back into the frame.

Names load on first use (PEP 562): the mask and paste-back need torch, and the command line's parser, which only
wants the landmark backends' names, should not pay for importing it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "align": ("FaceAligner", "FaceAlignmentError", "crop_face"),
    "landmarks": (
        "BACKENDS",
        "BackendUnavailableError",
        "Face",
        "InvalidFrameError",
        "LandmarkDetector",
        "create_detector",
        "select_face",
    ),
    "mask": ("DiffusionInputs", "diffusion_inputs", "fixed_mask"),
    "paste": ("paste_back",),
    "track": ("FaceTrack", "NoFaceError", "track_faces"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
