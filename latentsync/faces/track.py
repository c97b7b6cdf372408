"""The analysis pass: find the face in every frame and fix its alignment matrix, before any diffusion runs.

Only the anchors and a (2, 3) matrix per frame are kept, so a long video costs a few bytes per frame here.
Smoothing runs over the frames in display order, as the official pipeline does, whatever order the frames are later
played in.

Finding the face anew in every frame is the costliest part of the pass (the dlib finder scans the whole frame,
~45 ms at 1080p), so `FaceFollower` scans the whole frame only every `redetect_every` frames and whenever the face
was lost; in between, backends that can (`LocalSearch`) look for it only around its previous box, where the
same finder confirms a face is still there, so a frame without one is still reported as such. Where a few frames'
delay in noticing a lost face is acceptable (data preparation), `confirm_every` > 1 also skips that search on most
frames and only fits the landmarks to the followed face's box (`LandmarkFit`, under half the search's cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from latentsync.errors import LatentSyncError

from .align import FaceAligner
from .geometry import box_iou
from .landmarks import Face, LandmarkDetector, select_face
from .smooth import steady_anchors

# Frames between two whole-frame scans while the face is followed: a face that leaves is noticed within this many.
REDETECT_EVERY = 10
# A whole-frame detection keeps the face it was following when one of the faces found overlaps the last known box
# by at least this intersection-over-union (a face moves far less than that between two scans).
SAME_FACE_OVERLAP = 0.3
# With confirm_every > 1, a local search that misses is tried again around the box grown by these factors.
RETRY_GROWTH = (1.15, 1.3)


class NoFaceError(LatentSyncError, ValueError):
    """No usable face in any frame of the video."""


class FaceChoiceError(LatentSyncError, ValueError):
    """--face-index or --face-at matches none of the faces of the first frame that has faces."""


def describe_faces(faces: list[Face]) -> str:
    """'2 faces, at x 100-300 y 80-320 and x 500-700 y 90-330' (left to right), for error messages."""
    ordered = sorted(faces, key=lambda f: float(f.center[0]))
    where = " and ".join(f"x {b[0]:.0f}-{b[2]:.0f} y {b[1]:.0f}-{b[3]:.0f}" for b in (f.box for f in ordered))
    return f"{len(faces)} face{'s' if len(faces) != 1 else ''}, at {where}"


@runtime_checkable
class LocalSearch(Protocol):
    """A landmark backend that can find a known face again in the region around its previous box."""

    def detect_near(self, frame: np.ndarray, box: np.ndarray) -> Face | None:
        """The face near `box` (x1, y1, x2, y2), None when the region shows none."""
        ...


@runtime_checkable
class LandmarkFit(Protocol):
    """A landmark backend that can fit the landmarks to a given face box without looking for a face."""

    def landmarks_at(self, frame: np.ndarray, box: np.ndarray) -> Face:
        """The face whose detector box is `box` (x1, y1, x2, y2), its landmarks fitted there."""
        ...


class FaceFollower:
    """The chosen face of each frame of one video, given frame by frame in display order.

    A whole-frame detection runs on the first frame, every `redetect_every` frames after it and on every frame after
    one without a face; the frames in between take the backend's local search around the previous face, falling
    back to a whole-frame detection when it finds nothing there. `redetect_every=None`, or a backend without local
    search, detects in every frame. With `confirm_every` = k > 1 (and a backend with `LandmarkFit`), only every k-th
    of those frames is searched; the others take the landmarks fitted to the box of the last searched face, moved
    and scaled as the landmarks moved since, so a face that leaves is noticed within k frames.

    The face is chosen once (`select_face` with `index`/`at`: the largest by default) and then kept: a whole-frame
    detection takes the face overlapping the last one seen, so with two people in the picture the mouth that
    speaks does not hop to the other whenever that one looks a little larger. The choice is made again only when
    no face found overlaps the last one (the person left, or the scene cut).
    """

    def __init__(
        self,
        detector: LandmarkDetector,
        index: int | None = None,
        at: tuple[float, float] | None = None,
        redetect_every: int | None = REDETECT_EVERY,
        confirm_every: int = 1,
    ) -> None:
        if redetect_every is not None and redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1 (or None), got {redetect_every}")
        if confirm_every < 1:
            raise ValueError(f"confirm_every must be at least 1, got {confirm_every}")
        self.detector = detector
        self.index, self.at = index, at
        self.redetect_every = redetect_every if isinstance(detector, LocalSearch) else None
        self.confirm_every = confirm_every if isinstance(detector, LandmarkFit) else 1
        self.detections = 0  # whole-frame detections run so far
        self.faces: list[Face] | None = (
            None  # every face of this frame's whole-frame detection; None after a local search
        )
        self._previous: Face | None = None  # the face of the previous frame
        self._last_seen: Face | None = None  # the face of the last frame that had one
        self._followed = 0  # frames since the last whole-frame detection
        self._searched: Face | None = None  # the face of the last frame searched (whole-frame or local)
        self._unsearched = 0  # frames since then
        self._frame = -1  # number of the current frame

    def __call__(self, frame: np.ndarray) -> Face | None:
        """The chosen face in the next frame; FaceChoiceError when index/at match none of the first faces seen."""
        self._frame += 1
        face, self.faces = None, None
        if self._previous is not None and self.redetect_every and self._followed + 1 < self.redetect_every:
            self._followed += 1
            if self._searched is not None and self._unsearched + 1 < self.confirm_every:
                self._unsearched += 1
                face = self.detector.landmarks_at(frame, self._moved_box())  # type: ignore[attr-defined]
            else:
                face = self._search_near(frame, self._previous.box)
                self._searched, self._unsearched = face, 0
        if face is None:
            faces = self.faces = self.detector.detect(frame)
            face = self._same_face(faces) or select_face(faces, index=self.index, at=self.at)
            if face is None and faces and self._last_seen is None:
                self._refuse(faces)
            self.detections += 1
            self._followed = 0
            self._searched, self._unsearched = face, 0
        self._previous = face
        if face is not None:
            self._last_seen = face
        return face

    def _search_near(self, frame: np.ndarray, box: np.ndarray) -> Face | None:
        """The local search around `box`; when following by fitted landmarks, also around the box grown by each of
        RETRY_GROWTH before giving up (the finder's verdict on a face near its size limit hangs on the exact box)."""
        centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2
        boxes = [box]
        if self.confirm_every > 1:
            boxes += [np.concatenate([centre - half * growth, centre + half * growth]) for growth in RETRY_GROWTH]
        for searched in boxes:
            face = self.detector.detect_near(frame, searched)  # type: ignore[attr-defined]
            if face is not None:
                return face
        return None

    def _moved_box(self) -> np.ndarray:
        """The last searched face's box, shifted and scaled as its landmarks moved up to the previous frame."""
        assert self._searched is not None and self._previous is not None  # set by the caller's condition
        then, now = self._searched.landmarks, self._previous.landmarks
        shift = now.mean(axis=0) - then.mean(axis=0)
        spread_now, spread_then = (float(np.std(points - points.mean(axis=0))) for points in (now, then))
        scale = spread_now / spread_then if spread_then > 0 else 1.0
        centre = (self._searched.box[:2] + self._searched.box[2:]) / 2 + shift
        half = (self._searched.box[2:] - self._searched.box[:2]) / 2 * scale
        return np.concatenate([centre - half, centre + half])

    def _refuse(self, faces: list[Face]) -> None:
        found = f"frame {self._frame} (the first with faces) shows {describe_faces(faces)}"
        if self.at is not None:
            x, y = self.at
            raise FaceChoiceError(f"--face-at {x:g},{y:g} is far from every face: {found}; give a point on the face")
        raise FaceChoiceError(
            f"--face-index {self.index}: {found}; give 0 to {len(faces) - 1} from the left, or -1 to -{len(faces)} "
            "from the right"
        )

    def _same_face(self, faces: list[Face]) -> Face | None:
        """The face found that overlaps the last one seen the most, if it overlaps enough to be the same person."""
        if self._last_seen is None or not faces:
            return None
        overlaps = [box_iou(face.box, self._last_seen.box) for face in faces]
        best = max(range(len(faces)), key=overlaps.__getitem__)
        return faces[best] if overlaps[best] >= SAME_FACE_OVERLAP else None


@dataclass
class FaceTrack:
    """Per source frame: whether a face was found and the frame-to-crop matrix (NaN where none)."""

    matrices: np.ndarray  # (n, 2, 3) float64
    found: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.found)

    @property
    def faces_found(self) -> int:
        return int(self.found.sum())


def alignment_matrices(anchors: np.ndarray, resolution: int, steady: bool = True) -> np.ndarray:
    """(n, 2, 3) frame-to-crop matrices of one face track's (n, 3, 2) anchors, NaN rows where a frame has no face.

    `steady` steadies the anchors over the whole track first (`smooth.steady_anchors`); without it the alignment is
    the official one, frame by frame. The aligner's own smoothing state starts afresh with the track.
    """
    points = np.asarray(anchors, dtype=np.float64)
    found = np.isfinite(points).all(axis=(1, 2))
    if steady:
        points = steady_anchors(points)
    aligner = FaceAligner(resolution)
    matrices = np.full((len(points), 2, 3), np.nan)
    for i in np.flatnonzero(found):
        matrices[i] = aligner.matrix(points[i])
    return matrices


def track_faces(
    frames: Iterable[np.ndarray],
    detector: LandmarkDetector,
    resolution: int,
    index: int | None = None,
    at: tuple[float, float] | None = None,
    limit: int | None = None,
    progress: bool = True,
    redetect_every: int | None = REDETECT_EVERY,
    steady: bool = True,
) -> FaceTrack:
    """Find, select and align the face of each frame; stop after `limit` frames if given.

    `index`/`at` choose among several faces as `select_face` does (default: the largest), and the chosen person is
    then followed (see `FaceFollower`); `redetect_every` is `FaceFollower`'s (None: a whole-frame detection in every
    frame). `steady` steadies the anchors over the whole track first (`smooth.steady_anchors`); without it the
    alignment is the official one, frame by frame. Raises NoFaceError when no frame has a face.
    """
    follower = FaceFollower(detector, index, at, redetect_every)
    anchors: list[np.ndarray] = []
    nan = np.full((3, 2), np.nan)
    total = len(frames) if isinstance(frames, Sized) else None  # count the video's frames, not the audio's
    if limit is not None:
        total = limit if total is None else min(total, limit)
    with tqdm(total=total, desc="Finding faces", unit="frame", disable=not progress) as bar:
        for frame in frames:
            face = follower(frame)
            anchors.append(face.anchors() if face is not None else nan)
            bar.update()
            if limit is not None and len(anchors) >= limit:
                break
        bar.total = bar.n  # a file may hold fewer frames than its header says: the pass is complete all the same
    points = np.asarray(anchors, dtype=np.float64).reshape(-1, 3, 2)
    # numpy's stub types a reduction over axes as scalar-or-array; over two of three axes it is an array
    found = cast(np.ndarray, np.isfinite(points).all(axis=(1, 2)))
    track = FaceTrack(alignment_matrices(points, resolution, steady), found)
    if track.faces_found == 0:
        where = "" if index is None and at is None else " matching --face-index/--face-at"
        raise NoFaceError(f"no face{where} found in any of the {len(track)} frames of the video")
    return track
