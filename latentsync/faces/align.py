"""Affine face alignment: map three facial anchors onto a fixed template and cut out the face crop.

The geometry follows the official LatentSync pipeline so that crops match what the released checkpoints saw:

- The template lives in a 75 x 100 box (two eyebrow centres at y=20, the nose centre at (37.5, 40)), scaled by
  ``2.8 * resolution / 256``. The frame is warped (bilinear, grey 127 outside the frame) into that box, 210 x 280
  pixels at 256 px, then resized to the square crop with Lanczos-4, which stretches the face horizontally.
- The transform is a similarity (rotation + uniform scale + shift) whose rotation is the SVD Procrustes solution on
  the centred, std-normalised points and whose scale is the ratio of the two point sets' standard deviations
  (not the least-squares scale).
- Temporal smoothing acts on one small term only: the offset between the template's and the anchors' normalised
  nose positions, which is added to the shift and low-passed across frames (80 % current, 20 % previous). The
  rotation, scale and the rest of the shift follow the current anchors directly.

Everything is computed in float32/float64. Against the official code run in float32, crops agree within one grey
level (under 1 % of pixels differ). The official GPU path works in float16, which moves the matrix and the
sampling grid by up to about half a pixel, so against that path crops agree only to that precision.
"""

from __future__ import annotations

import cv2
import numpy as np

from latentsync.errors import LatentSyncError

from .landmarks import check_frame

# Template of the three anchors (image-left eyebrow centre, image-right eyebrow centre, nose centre) in the
# 75 x 100 base box; scaled by TEMPLATE_SCALE_256 * resolution / 256.
BASE_TEMPLATE = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]])
BASE_BOX = (75, 100)  # width, height
TEMPLATE_SCALE_256 = 2.8

# Weight of the previous frame's nose offset in the temporal smoothing.
SMOOTHING_MEMORY = 0.2
# Grey written where the warp reads outside the frame.
OUTSIDE_GREY = 127
# Frame pixels added around the bounding box of the warped box's outer pixel edges: room for the second bilinear
# tap (one frame pixel past a sampled point) and for round-off in the warp's fixed-point coordinates, so that
# reading or writing only this region gives the same pixels as the whole frame.
REGION_MARGIN = 4


class FaceAlignmentError(LatentSyncError, ValueError):
    """A crop, anchor set, matrix, mask or resolution handed to alignment, masking or paste-back does not fit."""


def template_points(resolution: int) -> np.ndarray:
    """(3, 2) float64 template anchor positions in the warped box for a crop of `resolution` pixels."""
    return BASE_TEMPLATE * _scale(resolution)


def warp_size(resolution: int) -> tuple[int, int]:
    """(width, height) of the box the frame is warped into before resizing to the square crop."""
    scale = _scale(resolution)
    return int(BASE_BOX[0] * scale), int(BASE_BOX[1] * scale)


def _scale(resolution: int) -> float:
    if not isinstance(resolution, (int, np.integer)) or resolution <= 0:
        raise FaceAlignmentError(f"resolution must be a positive integer, got {resolution!r}")
    return resolution / 256 * TEMPLATE_SCALE_256


def fit_similarity(anchors: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (2, 3) float64 similarity taking `anchors` towards `template`, and the raw nose offset.

    Both point sets are centred and divided by their own standard deviation (over all six coordinates, n - 1);
    the rotation is the orthogonal Procrustes solution (reflections excluded) and the scale the ratio of the
    standard deviations. The nose offset is template minus anchors in those normalised coordinates: the term the
    aligner smooths over time and adds to the shift.
    """
    src = _check_anchors(anchors)
    dst = np.asarray(template, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_std = np.std(src - src_mean, ddof=1)
    dst_std = np.std(dst - dst_mean, ddof=1)
    src_n = (src - src_mean) / src_std
    dst_n = (dst - dst_mean) / dst_std

    u, _, vt = np.linalg.svd(src_n.T @ dst_n)
    rotation = vt.T @ u.T
    if np.linalg.det(rotation) < 0:
        vt[-1] *= -1
        rotation = vt.T @ u.T

    linear = dst_std / src_std * rotation
    matrix = np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])
    return matrix, dst_n[2] - src_n[2]


def _check_anchors(anchors: np.ndarray) -> np.ndarray:
    points = np.asarray(anchors, dtype=np.float64)
    if points.shape != (3, 2):
        raise FaceAlignmentError(f"anchors must have shape (3, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise FaceAlignmentError("anchors contain NaN or infinite values")
    if np.ptp(points, axis=0).max() < 1e-6:
        raise FaceAlignmentError("anchors are degenerate: all three points coincide")
    return points


def frame_region(
    affine_matrix: np.ndarray, box_size: tuple[int, int], frame_shape: tuple[int, ...]
) -> tuple[slice, slice]:
    """(rows, cols) slices of the frame that the warped box can touch, clamped to the frame.

    The box's pixel-edge rectangle is mapped back into the frame and its bounding box grown by REGION_MARGIN;
    the slices may be empty when the face lies outside the frame.
    """
    width, height = box_size
    corners = np.array([[-1, -1], [width, -1], [-1, height], [width, height]], dtype=np.float64)
    inverse = cv2.invertAffineTransform(np.asarray(affine_matrix, dtype=np.float64))
    mapped = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = (int(v) - REGION_MARGIN for v in np.floor(mapped.min(axis=0)))
    x1, y1 = (int(v) + REGION_MARGIN + 1 for v in np.ceil(mapped.max(axis=0)))
    rows = slice(min(max(y0, 0), frame_shape[0]), min(max(y1, 0), frame_shape[0]))
    cols = slice(min(max(x0, 0), frame_shape[1]), min(max(x1, 0), frame_shape[1]))
    return rows, cols


def shift_source(affine_matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The matrix for a source image whose origin sits at (dx, dy) of the original source."""
    shifted = np.array(affine_matrix, dtype=np.float64)
    shifted[:, 2] += shifted[:, :2] @ np.array([dx, dy], dtype=np.float64)
    return shifted


def truncate_to_uint8(values: np.ndarray) -> np.ndarray:
    """Float pixels to uint8 by truncation, as the official code converts (not rounding).

    The small epsilon keeps float round-off such as 254.99998 from losing a whole grey level (the official float16
    arithmetic rounds those up before truncating).
    """
    return np.clip(values + 1e-3, 0, 255).astype(np.uint8)


class FaceAligner:
    """Streaming face alignment: one `align` call per frame, in display order, for one face track.

    The only state is the smoothed nose offset. Frames without a face are simply not passed in: the state then
    survives the gap, so the first frame after it is still blended 20 % with the last frame before it (a sub-pixel
    pull; harmless across short dropouts). Call `reset()` at a scene cut or when switching to another face, so the
    next frame starts unsmoothed like the first frame of a video.
    """

    def __init__(self, resolution: int = 256) -> None:
        self.resolution = resolution
        self.template = template_points(resolution)
        self._nose_offset: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the smoothing state."""
        self._nose_offset = None

    def matrix(self, anchors: np.ndarray) -> np.ndarray:
        """The smoothed (2, 3) float64 frame-to-box matrix for this frame's anchors (advances the state)."""
        matrix, offset = fit_similarity(anchors, self.template)
        if self._nose_offset is not None:
            offset = SMOOTHING_MEMORY * self._nose_offset + (1 - SMOOTHING_MEMORY) * offset
        self._nose_offset = offset
        matrix[:, 2] += offset
        return matrix

    def align(self, frame: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(face crop uint8 (R, R, 3), (2, 3) float64 matrix from frame pixels to the warped box).

        `anchors` are frame-pixel (3, 2) points as `Face.anchors()` gives them (already rounded there, as the
        official pipeline rounds before fitting).
        """
        frame = check_frame(frame)  # before the smoothing state advances
        matrix = self.matrix(anchors)
        return crop_face(frame, matrix, self.resolution), matrix


def check_matrix(affine_matrix: np.ndarray) -> np.ndarray:
    """The matrix as a finite, invertible (2, 3) float64 array, or FaceAlignmentError."""
    matrix = np.asarray(affine_matrix, dtype=np.float64)
    if matrix.shape != (2, 3) or not np.isfinite(matrix).all():
        raise FaceAlignmentError(f"affine_matrix must be a finite (2, 3) array, got shape {matrix.shape}")
    if abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        raise FaceAlignmentError("affine_matrix is singular")
    return matrix


def crop_face(frame: np.ndarray, affine_matrix: np.ndarray, resolution: int) -> np.ndarray:
    """The uint8 (R, R, 3) face crop of `frame` under a frame-to-box matrix from `FaceAligner.matrix`.

    Separate from the aligner so that matrices can be fitted in one pass over a video and crops cut in a later one.
    Only the frame region under the face is read.
    """
    frame = check_frame(frame)
    matrix = check_matrix(affine_matrix)
    width, height = box_size = warp_size(resolution)
    rows, cols = frame_region(matrix, box_size, frame.shape)
    if rows.start == rows.stop or cols.start == cols.stop:
        box: np.ndarray = np.full((height, width, 3), float(OUTSIDE_GREY), dtype=np.float32)
    else:
        box = cv2.warpAffine(
            frame[rows, cols].astype(np.float32),
            shift_source(matrix, cols.start, rows.start),
            box_size,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(OUTSIDE_GREY,) * 3,
        )
    return cv2.resize(truncate_to_uint8(box), (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
