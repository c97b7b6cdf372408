"""dlib backend: HOG frontal-face finder on a downscaled frame, 68-point shape predictor at full resolution.

The face finder's cost grows with the pixel count while a talking head is large, so it runs on a frame whose long
side is about 960 px; the shape predictor, which is cheap and sets the landmark precision, sees the full frame.
On the 1080x1920 demo clips this costs ~50 ms of CPU time a frame on one thread and finds the face in 148-150
of 150 frames (benchmarks/landmarks.py).

`detect_near` finds a face again around its box in an earlier frame, with the same finder on that region alone:
what `faces.track.FaceFollower` uses between whole-frame detections. Its anchors lie within 2 px of a whole-frame
detection's on demo1 (mean 0.9 px), within 3 px in 99 % of demo3's frames, and on demo2, whose whole-frame boxes
themselves jump between two sizes from frame to frame, within 2 px in 86 % of frames (mean 1.7, at most 9), with
the same frame-to-frame jitter as per-frame detection.

`landmarks_at` only fits the 68 points to a given box (~1 ms): `FaceFollower(confirm_every=k)` uses it between
searches.

Licence: the 68-point model file (shape_predictor_68_face_landmarks.dat, shipped by ``face-recognition-models``)
is for non-commercial use only, as it was trained on the iBUG 300-W data set.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..geometry import box_iou
from ..landmarks import BackendUnavailableError, Face, check_frame, require

DETECT_LONG_SIDE = 960
# `detect_near`: the previous box is scaled to this many pixels (a little above the finder's 80 px window, so a face
# that shrank by one of the finder's 1.2x scale steps is still found) and searched with this margin, as a fraction
# of the box, on each side (head motion between frames is well under that).
NEAR_WINDOW = 96
NEAR_MARGIN = 0.3
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
        return self._find(frame, (slice(0, height), slice(0, width)), scale, self.upsample)

    def detect_near(self, frame: np.ndarray, box: np.ndarray) -> Face | None:
        """The face in the region around `box` (x1, y1, x2, y2, a face's box in an earlier frame), or None.

        The face finder searches only that region (NEAR_MARGIN of the box's size on each side), scaled so that the
        box spans NEAR_WINDOW px: ~6 ms of CPU time with the landmarks for a 1080p talking head, against ~47 for
        `detect`. It keeps the finder's own verdict, so a region that no longer shows a face gives None (then run
        `detect`). Among several faces there, the one overlapping `box` most is returned; one that does not overlap
        it at all is not.
        """
        frame = check_frame(frame)
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
        width, height = x2 - x1, y2 - y1
        if not (width > 0 and height > 0 and np.isfinite([x1, y1, x2, y2]).all()):
            raise ValueError(f"box must be a finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1, got {box}")
        rows = _span(y1 - NEAR_MARGIN * height, y2 + NEAR_MARGIN * height, frame.shape[0])
        cols = _span(x1 - NEAR_MARGIN * width, x2 + NEAR_MARGIN * width, frame.shape[1])
        if rows.start == rows.stop or cols.start == cols.stop:
            return None
        faces = self._find(frame, (rows, cols), NEAR_WINDOW / max(width, height), upsample=0)
        overlap = [(box_iou(face.box, (x1, y1, x2, y2)), face) for face in faces]
        best = max(overlap, key=lambda pair: pair[0], default=(0.0, None))
        return best[1] if best[0] > 0 else None

    def landmarks_at(self, frame: np.ndarray, box: np.ndarray, score: float = 0.0) -> Face:
        """The face with finder box `box` (x1, y1, x2, y2, full-frame pixels), its landmarks fitted in that box."""
        frame = check_frame(frame)
        box = np.asarray(box, dtype=np.float32).reshape(4)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = self._predictor(frame, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return Face(box=box, landmarks=points, score=score)

    def _find(self, frame: np.ndarray, region: tuple[slice, slice], scale: float, upsample: int) -> list[Face]:
        """Faces whose box the finder places in `region` of `frame` resized by `scale`, with full-frame landmarks."""
        rows, cols = region
        image = frame[rows, cols]
        if scale != 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            shrink = scale < 1.0
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        rects, scores, _ = self._finder.run(np.ascontiguousarray(image), upsample, 0.0)
        offset = np.array([cols.start, rows.start, cols.start, rows.start], dtype=np.float32)
        faces = []
        for rect, score in zip(rects, scores):
            # dlib rectangles are inclusive; the box's x2, y2 are the exclusive edges, in full-frame pixels.
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)
            faces.append(self.landmarks_at(frame, box / scale + offset, score))
        return faces


def _span(start: float, stop: float, length: int) -> slice:
    """Whole pixels from `start` to `stop`, clamped to 0 .. length."""
    return slice(min(max(int(np.floor(start)), 0), length), min(max(int(np.ceil(stop)), 0), length))
