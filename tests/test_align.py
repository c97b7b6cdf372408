"""Face alignment and paste-back: template geometry, the similarity fit, smoothing, crops of a real frame, and the
region-limited paste against a plain full-frame implementation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from latentsync.faces.align import (
    FaceAligner,
    FaceAlignmentError,
    crop_face,
    fit_similarity,
    frame_region,
    template_points,
)
from latentsync.faces.landmarks import InvalidFrameError
from latentsync.faces.paste import paste_back, resize_face

# Anchors (image-left eyebrow centre, image-right eyebrow centre, nose centre) of frame 0 of demo1_video.mp4,
# measured once with dlib's 68-point model (brows 17-21 / 22-26, nose 29, 30, 31, 35; points and means rounded).
DEMO1_ANCHORS = np.array([[561.0, 655.0], [656.0, 667.0], [594.0, 722.0]])
# Same measurement, frame pixels: mouth centre (mean of points 48-67).
DEMO1_MOUTH = np.array([588.4, 768.2])

# Hand-computed template: base points (17, 20), (58, 20), (37.5, 40) in a 75 x 100 box, times 2.8 at 256 px.
TEMPLATE_256 = np.array([[47.6, 56.0], [162.4, 56.0], [105.0, 112.0]])
BOX = {256: (210, 280), 512: (420, 560)}  # (width, height) warped before the square resize


@pytest.fixture(scope="module")
def frame(assets: Path) -> np.ndarray:
    with av.open(str(assets / "demo1_video.mp4")) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def dlib_models():
    dlib = pytest.importorskip("dlib")
    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))


def rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def box_to_crop(points: np.ndarray, resolution: int) -> np.ndarray:
    """Warped-box pixels to square-crop pixels under cv2.resize's pixel-centre convention."""
    width, height = BOX[resolution]
    return (points + 0.5) * [resolution / width, resolution / height] - 0.5


def normalised_nose(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(axis=0)
    return centred[2] / np.sqrt((centred**2).sum() / 5)


def test_template_is_scaled_with_resolution():
    assert np.allclose(template_points(256), TEMPLATE_256)
    assert np.allclose(template_points(512), 2 * TEMPLATE_256)


def test_template_points_land_on_template_positions():
    aligner = FaceAligner(256)
    matrix = aligner.matrix(TEMPLATE_256 * 0.7 + [300.0, 410.0])  # a scaled, shifted, unrotated face
    assert np.allclose(apply(matrix, TEMPLATE_256 * 0.7 + [300.0, 410.0]), TEMPLATE_256, atol=1e-9)
    assert np.allclose(matrix[:, :2], np.eye(2) / 0.7)


def test_rotated_face_is_derotated_up_to_the_nose_offset():
    theta = np.deg2rad(12.0)
    anchors = 1.3 * TEMPLATE_256 @ rotation(theta).T + [500.0, 800.0]
    matrix = FaceAligner(256).matrix(anchors)
    assert np.allclose(matrix[:, :2], rotation(-theta) / 1.3, atol=1e-12)
    # The official shift term adds template minus anchors in std-normalised coordinates at the nose.
    nose_n = normalised_nose(TEMPLATE_256)
    assert np.allclose(apply(matrix, anchors), TEMPLATE_256 + nose_n - rotation(theta) @ nose_n, atol=1e-9)


def test_fit_matches_closed_form_procrustes():
    rng = np.random.default_rng(3)
    for _ in range(20):
        anchors = DEMO1_ANCHORS + rng.normal(0, 8, (3, 2))
        src = anchors - anchors.mean(axis=0)
        dst = TEMPLATE_256 - TEMPLATE_256.mean(axis=0)
        # 2-D orthogonal Procrustes: angle from the summed cross and dot products.
        theta = np.arctan2((src[:, 0] * dst[:, 1] - src[:, 1] * dst[:, 0]).sum(), (src * dst).sum())
        scale = np.sqrt((dst**2).sum() / (src**2).sum())
        linear = scale * rotation(theta)
        shift = TEMPLATE_256.mean(axis=0) - linear @ anchors.mean(axis=0)
        matrix, offset = fit_similarity(anchors, TEMPLATE_256)
        assert np.allclose(matrix, np.hstack([linear, shift[:, None]]), atol=1e-9)
        assert np.allclose(offset, normalised_nose(TEMPLATE_256) - normalised_nose(anchors))


def test_smoothing_low_passes_the_nose_offset():
    """The official smoothing is an 80/20 running blend of the nose offset added to the shift (the rotation and
    scale follow each frame's anchors as they are, so it barely damps the jitter of the whole crop)."""
    rng = np.random.default_rng(0)
    noisy = [DEMO1_ANCHORS + rng.normal(0, 1.5, (3, 2)) for _ in range(100)]
    aligner = FaceAligner(256)
    applied, raw = [], []
    for anchors in noisy:
        fitted, offset = fit_similarity(anchors, TEMPLATE_256)
        applied.append(aligner.matrix(anchors)[:, 2] - fitted[:, 2])
        raw.append(offset)
    applied, raw = np.array(applied), np.array(raw)
    assert np.allclose(applied[0], raw[0])  # the first frame is not smoothed
    assert np.allclose(applied[1:], 0.2 * applied[:-1] + 0.8 * raw[1:])
    assert np.diff(applied, axis=0).std() < 0.8 * np.diff(raw, axis=0).std()


def test_reset_forgets_the_smoothing_state():
    aligner = FaceAligner(256)
    aligner.matrix(DEMO1_ANCHORS + [[0, 0], [0, 9], [4, 0]])
    aligner.reset()
    assert np.array_equal(aligner.matrix(DEMO1_ANCHORS), FaceAligner(256).matrix(DEMO1_ANCHORS))


@pytest.mark.parametrize("bad", [np.zeros((2, 2)), np.full((3, 2), np.nan), np.full((3, 2), 5.0)])
def test_bad_anchors_are_rejected(bad):
    with pytest.raises(FaceAlignmentError):
        FaceAligner(256).matrix(bad)


def test_bad_frames_are_rejected():
    aligner = FaceAligner(256)
    with pytest.raises(InvalidFrameError, match="uint8"):
        aligner.align(np.zeros((64, 64, 3), np.float32), DEMO1_ANCHORS)
    with pytest.raises(InvalidFrameError, match="shape"):
        aligner.align(np.zeros((64, 64), np.uint8), DEMO1_ANCHORS)
    crop, matrix = aligner.align(np.zeros((64, 64, 3), np.uint8), DEMO1_ANCHORS / 10)
    with pytest.raises(InvalidFrameError, match="uint8"):
        paste_back(np.zeros((64, 64, 3), np.float32), crop, matrix)


@pytest.mark.parametrize("resolution", [256, 512])
def test_real_face_is_centred_in_the_crop(frame, dlib_models, resolution):
    detector, predictor = dlib_models
    crop, matrix = FaceAligner(resolution).align(frame, DEMO1_ANCHORS)
    assert crop.shape == (resolution, resolution, 3) and crop.dtype == np.uint8
    assert matrix.shape == (2, 3)

    faces = detector(crop, 0)
    assert len(faces) == 1
    points = np.array([[p.x, p.y] for p in predictor(crop, faces[0]).parts()], dtype=np.float64)
    eyes = points[36:48].mean(axis=0)
    assert points[36:48, 1].max() < resolution / 2  # eyes in the upper half
    assert abs(eyes[0] - resolution / 2) < 0.06 * resolution  # horizontally centred
    nose_template = box_to_crop(TEMPLATE_256[2] * resolution / 256, resolution)
    assert np.linalg.norm(points[30] - nose_template) < 0.05 * resolution  # nose tip at the template nose
    assert points[48:68, 1].min() > resolution / 2  # mouth in the lower half


@pytest.mark.parametrize("resolution", [256, 512])
def test_crop_reads_the_face_region_like_a_full_frame_warp(frame, resolution):
    crop, matrix = FaceAligner(resolution).align(frame, DEMO1_ANCHORS)
    box = cv2.warpAffine(
        frame.astype(np.float32), matrix, BOX[resolution], flags=cv2.INTER_LINEAR, borderValue=(127, 127, 127)
    )
    box = np.floor(box + 1e-3).astype(np.uint8)  # truncation, like the official float-to-uint8 cast
    expected = cv2.resize(box, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 1


def full_frame_paste(frame: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The official restore maths written plainly over the whole frame (float32, truncating to uint8)."""
    width, height = BOX[face.shape[0]]
    box = TF.resize(
        torch.from_numpy(face).permute(2, 0, 1).float(), [height, width], InterpolationMode.BICUBIC, antialias=True
    )
    box = box.permute(1, 2, 0).numpy()
    inverse = cv2.invertAffineTransform(matrix)
    size = (frame.shape[1], frame.shape[0])
    fill = 127 * 127.5 + 127.5  # grey 127 in the [-1, 1] domain, in 0..255 units
    warped = cv2.warpAffine(box, inverse, size, flags=cv2.INTER_LINEAR, borderValue=(fill, fill, fill))
    warped = np.clip(warped, 0, 255)
    mask = cv2.warpAffine(np.ones((height, width), np.float32), inverse, size, flags=cv2.INTER_LINEAR)
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    edge = int(np.sqrt(mask.sum(dtype=np.float64))) // 20
    centre = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
    k = 2 * edge + 1
    soft = cv2.GaussianBlur(centre, (k, k), 0.3 * ((k - 1) * 0.5 - 1) + 0.8)[..., None]
    out = soft * (mask[..., None] * warped) + (1 - soft) * frame.astype(np.float32)
    return np.floor(np.clip(out, 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("resolution", [256, 512])
def test_region_paste_equals_full_frame_paste(frame, resolution):
    crop, matrix = FaceAligner(resolution).align(frame, DEMO1_ANCHORS)
    generated = crop.copy()
    generated[resolution // 2 :] = 255 - generated[resolution // 2 :]  # an obviously different lower face
    out = paste_back(frame, generated, matrix)
    reference = full_frame_paste(frame, generated, matrix)
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1
    assert (out != frame).any(axis=2).sum() > 20_000  # the new lower face really went in


def test_face_cut_by_the_frame_edge_pastes_like_full_frame(frame):
    """A face hanging over the left edge: the region is clamped and the edge handled as on the whole frame."""
    part = np.ascontiguousarray(frame[500:1000, 545:900])  # the left eyebrow sits 16 px from the left edge
    anchors = DEMO1_ANCHORS - [545, 500]
    crop, matrix = FaceAligner(256).align(part, anchors)
    assert (crop[:, :12] == 127).all()  # outside the frame reads as grey 127
    generated = 255 - crop
    out = paste_back(part, generated, matrix)
    assert np.abs(out.astype(int) - full_frame_paste(part, generated, matrix).astype(int)).max() <= 1


def test_face_outside_the_frame_gives_grey_crop_and_no_paste(frame):
    anchors = DEMO1_ANCHORS + [3000.0, 0.0]
    crop, matrix = FaceAligner(256).align(frame, anchors)
    assert (crop == 127).all()
    assert np.array_equal(paste_back(frame, crop, matrix), frame)


def test_tiny_face_pastes_like_full_frame(frame):
    """A face a few pixels wide, where the blend's erosion width rounds down to zero."""
    anchors = (DEMO1_ANCHORS - DEMO1_ANCHORS[2]) / 12 + [300.0, 300.0]
    crop, matrix = FaceAligner(256).align(frame, anchors)
    generated = 255 - crop
    out = paste_back(frame, generated, matrix)
    assert np.abs(out.astype(int) - full_frame_paste(frame, generated, matrix).astype(int)).max() <= 1
    assert 0 < (out != frame).any(axis=2).sum() < 400


def test_round_trip_with_the_unchanged_crop(frame):
    crop, matrix = FaceAligner(256).align(frame, DEMO1_ANCHORS)
    out = paste_back(frame, crop, matrix)
    rows, cols = frame_region(matrix, BOX[256], frame.shape)
    outside = np.ones(frame.shape[:2], bool)
    outside[rows, cols] = False
    assert np.array_equal(out[outside], frame[outside])  # bit-identical outside the pasted region

    diff = np.abs(out.astype(int) - frame.astype(int))
    x, y = DEMO1_MOUTH.astype(int)
    mouth = diff[y - 25 : y + 25, x - 40 : x + 40]
    assert mouth.mean() < 2.0  # only resampling error where the face is pasted fully
    assert diff.mean(axis=2)[rows, cols].mean() < 1.5


def test_crop_from_a_stored_matrix_equals_the_aligned_crop(frame):
    """Two-pass use: fit matrices first, cut crops later."""
    crop, matrix = FaceAligner(512).align(frame, DEMO1_ANCHORS)
    assert np.array_equal(crop_face(frame, matrix, 512), crop)
    with pytest.raises(FaceAlignmentError, match="finite"):
        crop_face(frame, np.full((2, 3), np.nan), 512)


def test_paste_rejects_mismatched_inputs(frame):
    crop, matrix = FaceAligner(256).align(frame, DEMO1_ANCHORS)
    with pytest.raises(FaceAlignmentError, match="square"):
        paste_back(frame, crop[:, :200], matrix)
    with pytest.raises(FaceAlignmentError, match="singular"):
        paste_back(frame, crop, np.zeros((2, 3)))


def test_concurrent_pastes_leave_the_thread_count_alone(frame):
    """Pipelines in a server or threaded data workers paste at the same time: none may change the thread count that
    the other threads, or threads started later, compute with."""
    import threading

    crop, matrix = FaceAligner(256).align(frame, DEMO1_ANCHORS)
    generated = 255 - crop
    expected = paste_back(frame, generated, matrix)
    small = generated[::8, ::8].astype(np.float32)

    def in_new_thread(work, *args):
        out = []
        thread = threading.Thread(target=lambda: out.append(work(*args)))
        thread.start()
        return thread, out

    def counts_and_resize() -> tuple[int, int]:
        before = torch.get_num_threads()
        resize_face(small, (40, 50))
        return before, torch.get_num_threads()

    threads, default = torch.get_num_threads(), in_new_thread(torch.get_num_threads)
    default[0].join()
    # Threads started while others resize (where the count was switched) must still start from the default.
    runs = [in_new_thread(counts_and_resize) for _ in range(100)]
    pastes = [in_new_thread(paste_back, frame, generated, matrix) for _ in range(2)]
    for thread, _ in runs + pastes:
        thread.join()
    assert {count for _, out in runs for count in out[0]} == {default[1][0]}
    assert all(np.array_equal(out[0], expected) for _, out in pastes)
    later = in_new_thread(torch.get_num_threads)
    later[0].join()
    assert (torch.get_num_threads(), later[1][0]) == (threads, default[1][0])
