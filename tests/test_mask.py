"""The fixed mouth masks drawn in code against the official images, and the masked U-Net inputs of a crop."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from latentsync.faces.align import FaceAligner, FaceAlignmentError
from latentsync.faces.mask import MASK_SHAPES, diffusion_inputs, fixed_mask

# dlib 68-point measurements on frame 0 of demo1_video.mp4 (frame pixels): anchors as in test_align.py, the mouth
# centre (mean of points 48-67) and the eye centres (means of 36-41 and 42-47).
DEMO1_ANCHORS = np.array([[561.0, 655.0], [656.0, 667.0], [594.0, 722.0]])
DEMO1_MOUTH = np.array([588.4, 768.2])
DEMO1_EYES = np.array([[562.5, 687.5], [646.5, 698.2]])


def official_mask(assets: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(assets / f"{name}.png"))
    assert image is not None, f"cannot read {name}.png"
    return image


@pytest.mark.parity
@pytest.mark.parametrize("variant", list(MASK_SHAPES))
def test_mask_equals_official_image_at_256(assets, variant):
    official = official_mask(assets, variant)
    assert (official == official[..., :1]).all()  # grey: one channel says it all
    mask = fixed_mask(256, variant)
    assert mask.dtype == np.float32 and mask.shape == (256, 256)
    assert np.array_equal(mask * 255, official[..., 0].astype(np.float32))


@pytest.mark.parity
@pytest.mark.parametrize("variant", ["mask", "mask3"])
def test_mask_at_512_is_the_official_lanczos_resize(assets, variant):
    official = cv2.resize(official_mask(assets, variant), (512, 512), interpolation=cv2.INTER_LANCZOS4) / 255.0
    mask = fixed_mask(512, variant)
    assert mask.shape == (512, 512)
    assert np.abs(mask - official[..., 0]).max() < 1e-6
    assert 0 < ((mask > 0) & (mask < 1)).sum() < 0.05 * mask.size  # soft only along the outline


def test_mask_covers_the_mouth_and_keeps_the_eyes(assets):
    """On the aligned demo face the default mask hides the mouth and leaves both eyes visible."""
    with av.open(str(assets / "demo1_video.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    _, matrix = FaceAligner(256).align(frame, DEMO1_ANCHORS)
    points = np.vstack([DEMO1_MOUTH, DEMO1_EYES]) @ matrix[:, :2].T + matrix[:, 2]
    points = (points + 0.5) * [256 / 210, 256 / 280] - 0.5  # warped box -> square crop
    x, y = np.round(points).astype(int).T
    mask = fixed_mask(256)
    assert mask[y[0], x[0]] == 0
    assert mask[y[1], x[1]] == 1 and mask[y[2], x[2]] == 1


def test_unknown_variant_and_bad_resolution_are_rejected():
    with pytest.raises(FaceAlignmentError, match="mask2"):
        fixed_mask(256, "mouth")
    with pytest.raises(FaceAlignmentError, match="resolution"):
        fixed_mask(0)


def test_diffusion_inputs_match_the_official_preprocessing():
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    face[0, 0] = (0, 128, 255)
    mask = fixed_mask(256)
    inputs = diffusion_inputs(face, mask)

    assert inputs.pixel_values.shape == (3, 256, 256) and inputs.pixel_values.dtype == torch.float32
    assert inputs.pixel_values[:, 0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    expected = torch.from_numpy(face).permute(2, 0, 1).float() / 255.0
    assert torch.equal(inputs.pixel_values, (expected - 0.5) / 0.5)

    assert inputs.mask.shape == (1, 256, 256) and torch.equal(inputs.mask[0], torch.from_numpy(mask))
    hidden = torch.from_numpy(mask == 0)
    assert (inputs.masked_pixel_values[:, hidden] == 0).all()
    assert torch.equal(inputs.masked_pixel_values[:, ~hidden], inputs.pixel_values[:, ~hidden])


def test_diffusion_inputs_reject_mismatched_shapes():
    face = np.zeros((256, 256, 3), np.uint8)
    with pytest.raises(FaceAlignmentError, match="does not match"):
        diffusion_inputs(face, fixed_mask(512))
    with pytest.raises(FaceAlignmentError, match="uint8"):
        diffusion_inputs(face.astype(np.float32), fixed_mask(256))
