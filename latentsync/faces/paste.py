"""Paste a generated face crop back into its frame with the official soft-edged blend, touching only the face's
region of the frame.

The maths is the official restore step: the square crop is resized (bicubic, antialiased) back to the warped box,
warped into the frame with the inverse alignment matrix, and blended through a mask made from the warped box
outline: eroded 2 x 2, eroded again by a width that grows with the face (sqrt(area) // 20 per side) and Gaussian
blurred by the same width. Every one of these steps only has effect near the box, so they run on the frame region
under the box (plus a margin) instead of the whole frame: the same pixels (within one grey level of float
round-off) in a few ms per 1080p frame instead of tens of ms (see benchmarks/paste.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .align import FaceAlignmentError, check_matrix, frame_region, truncate_to_uint8, warp_size
from .landmarks import check_frame

# The official warp fills outside the crop with 127 in the [-1, 1] pixel domain, i.e. 127 * 127.5 + 127.5 in
# 0..255 units (clamped to white afterwards). It only reaches the one-pixel rim where bilinear taps mix it in and
# the blend weight is nearly zero: at most one grey level of difference, kept for parity.
OUTSIDE_FILL = 127 * 127.5 + 127.5
# The first, fixed erosion of the warped box mask.
RIM_EROSION = np.ones((2, 2), dtype=np.uint8)


def resize_face(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 crop resized to `size` (width, height): bicubic with antialiasing, as torchvision does.

    It runs on the process's torch threads as they are (set once per process by `runtime.configure_threads`):
    changing the process-wide count around this call would race with other threads pasting or denoising.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(face, dtype=np.float32)).permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(
        tensor, size=(size[1], size[0]), mode="bicubic", align_corners=False, antialias=True
    )
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def soft_mask(box_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rim-eroded mask, soft blend mask) from the warped box mask, both float32 like the input.

    The erosion width and blur size grow with the eroded area, so `box_mask` must hold every frame pixel the box
    covers. The blur's sigma is OpenCV's default for its kernel size, written out as the official code does.
    """
    eroded = cv2.erode(box_mask, RIM_EROSION)
    edge = int(float(eroded.sum(dtype=np.float64)) ** 0.5) // 20
    center = cv2.erode(eroded, np.ones((2 * edge, 2 * edge), dtype=np.uint8))
    blur = 2 * edge + 1
    sigma = 0.3 * ((blur - 1) * 0.5 - 1) + 0.8
    return eroded, cv2.GaussianBlur(center, (blur, blur), sigma, borderType=cv2.BORDER_REFLECT_101)


def paste_back(
    frame: np.ndarray,
    face: np.ndarray,
    affine_matrix: np.ndarray,
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """A copy of `frame` (uint8 (H, W, 3)) with `face` blended in where `FaceAligner.align` cut it out.

    `face` is the (R, R, 3) crop, uint8 or float in 0..255; `affine_matrix` the (2, 3) matrix `align` returned for
    this frame. `region` (rows, cols) limits the work to part of the frame; by default it is `frame_region(...)`,
    the box under the face, outside of which the result is bit-identical to `frame`. Passing the whole frame gives
    the full-frame computation.
    """
    frame = check_frame(frame)
    face = np.asarray(face)
    if face.ndim != 3 or face.shape[2] != 3 or face.shape[0] != face.shape[1]:
        raise FaceAlignmentError(f"face must be a square (R, R, 3) crop, got shape {face.shape}")
    matrix = check_matrix(affine_matrix)

    box_size = warp_size(face.shape[0])
    if region is None:
        rows, cols = frame_region(matrix, box_size, frame.shape)
    else:
        rows, cols = (slice(*part.indices(length)[:2]) for part, length in zip(region, frame.shape))
    out = frame.copy()
    if rows.start == rows.stop or cols.start == cols.stop:
        return out

    inverse = cv2.invertAffineTransform(matrix)
    inverse[:, 2] -= (cols.start, rows.start)
    size = (cols.stop - cols.start, rows.stop - rows.start)

    def warp(image: np.ndarray, fill: float) -> np.ndarray:
        return cv2.warpAffine(
            image, inverse, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(fill,) * 3
        )

    eroded, soft = soft_mask(warp(np.ones(box_size[::-1], dtype=np.float32), 0.0))
    soft = soft[..., None]
    # soft * (eroded * face) + (1 - soft) * background, computed in place (the same float32 operations, in the
    # same order, so the same pixels) to spare the region-sized temporaries.
    blended = np.clip(warp(resize_face(face, box_size), OUTSIDE_FILL), 0, 255)
    blended *= eroded[..., None]
    blended *= soft
    background = frame[rows, cols].astype(np.float32)
    background *= 1 - soft
    blended += background
    out[rows, cols] = truncate_to_uint8(blended)
    return out
