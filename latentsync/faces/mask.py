"""The fixed mouth masks of the aligned face crop, drawn in code, and the masked inputs the diffusion U-Net takes.

A mask is 1 where the crop is kept and 0 where the model regenerates it (mouth, chin and cheeks). The official
masks are free-hand outlines in 256 px crop space; here each is the exact vector outline that rasterises (with
OpenCV's polygon fill) to the official image pixel for pixel. Other resolutions are the 256 px mask resized with
Lanczos-4 and saturated to 0..255 before scaling to [0, 1], as the official loader does.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import torch

from .align import FaceAlignmentError

MASK_SIZE = 256

# Lower face outline: flat top along row 128 from x=9 to x=247, a rounded bottom reaching row 242.
_BOWL = (
    (9, 128),
    (12, 170),
    (17, 179),
    (22, 187),
    (22, 188),
    (38, 206),
    (48, 214),
    (59, 221),
    (80, 232),
    (96, 238),
    (110, 241),
    (150, 242),
    (163, 239),
    (165, 238),
    (189, 228),
    (200, 221),
    (211, 213),
    (219, 205),
    (227, 196),
    (239, 178),
    (244, 169),
    (247, 128),
)
# Nearly a half disk of radius ~89 centred at (128, 128), flat side up.
_HALF_DISK = (
    (39, 128),
    (39, 131),
    (40, 141),
    (42, 151),
    (45, 160),
    (48, 167),
    (55, 179),
    (60, 186),
    (68, 194),
    (77, 201),
    (90, 209),
    (91, 209),
    (97, 212),
    (109, 215),
    (123, 217),
    (131, 217),
    (141, 216),
    (151, 214),
    (160, 211),
    (167, 208),
    (179, 201),
    (188, 194),
    (196, 186),
    (201, 179),
    (204, 174),
    (210, 163),
    (213, 154),
    (215, 147),
    (217, 133),
    (217, 128),
)

# Variant name (the official file's stem) -> (polygons, inclusive rectangles ((x1, y1), (x2, y2))) to clear.
MASK_SHAPES: dict[str, tuple[tuple[tuple[tuple[int, int], ...], ...], tuple[tuple[tuple[int, int], ...], ...]]] = {
    # mask.png, the default: the lower face plus the cheeks on both sides of the nose (rows 95-127).
    "mask": ((_BOWL,), (((9, 95), (77, 127)), ((178, 95), (246, 127)))),
    # mask2.png: the lower face below the crop's middle row only.
    "mask2": ((_BOWL,), ()),
    # mask3.png: a smaller half disk around mouth and chin.
    "mask3": ((_HALF_DISK,), ()),
    # mask4.png: the lower face plus a full-width band from row 60, nose included.
    "mask4": ((_BOWL,), (((9, 60), (246, 127)),)),
}


class DiffusionInputs(NamedTuple):
    """Per-crop tensors for the U-Net: the crop in [-1, 1] (3, R, R), the crop with the masked area zeroed, and the
    (1, R, R) mask, all float32."""

    pixel_values: torch.Tensor
    masked_pixel_values: torch.Tensor
    mask: torch.Tensor


def fixed_mask(resolution: int = 256, variant: str = "mask") -> np.ndarray:
    """(R, R) float32 mask in [0, 1]: 1 keeps the crop, 0 marks the area to regenerate."""
    if variant not in MASK_SHAPES:
        raise FaceAlignmentError(f"unknown mask variant {variant!r}; valid names: {', '.join(MASK_SHAPES)}")
    if not isinstance(resolution, (int, np.integer)) or resolution <= 0:
        raise FaceAlignmentError(f"resolution must be a positive integer, got {resolution!r}")
    polygons, rectangles = MASK_SHAPES[variant]
    mask: np.ndarray = np.full((MASK_SIZE, MASK_SIZE), 255, dtype=np.uint8)
    cv2.fillPoly(mask, [np.array(polygon, dtype=np.int32) for polygon in polygons], 0)
    for corner1, corner2 in rectangles:
        cv2.rectangle(mask, corner1, corner2, 0, thickness=-1)
    if resolution != MASK_SIZE:
        mask = cv2.resize(mask, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
    return mask.astype(np.float32) / 255


def diffusion_inputs(face: np.ndarray, mask: np.ndarray) -> DiffusionInputs:
    """The U-Net's inputs for one uint8 (R, R, 3) RGB face crop and its (R, R) `fixed_mask`."""
    if not isinstance(face, np.ndarray) or face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise FaceAlignmentError(
            f"face must be a uint8 (R, R, 3) crop, got {getattr(face, 'dtype', type(face).__name__)} "
            f"with shape {getattr(face, 'shape', None)}"
        )
    if mask.shape != face.shape[:2]:
        raise FaceAlignmentError(f"mask shape {mask.shape} does not match the face crop {face.shape[:2]}")
    pixel_values = (torch.from_numpy(face).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    mask_tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
    return DiffusionInputs(pixel_values, pixel_values * mask_tensor, mask_tensor)
