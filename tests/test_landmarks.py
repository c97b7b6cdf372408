"""Face landmarks: dlib on the real demo frames, the anchor mapping, face selection and the backends' error paths."""

from __future__ import annotations

import sys
import urllib.error

import numpy as np
import pytest

from latentsync.faces import (
    BACKENDS,
    BackendUnavailableError,
    Face,
    InvalidFrameError,
    LandmarkDetector,
    create_detector,
    select_face,
)
from latentsync.testing import decode_frames

FRAMES_PER_CLIP = 5


@pytest.fixture(scope="module")
def dlib_detector() -> LandmarkDetector:
    return create_detector("dlib")


@pytest.fixture(scope="module", params=["demo1", "demo2"])
def clip(request, assets, dlib_detector) -> tuple[list[np.ndarray], list[list[Face]]]:
    """The first frames of a demo clip and what dlib found on each."""
    frames = decode_frames(assets / f"{request.param}_video.mp4", FRAMES_PER_CLIP)
    return frames, [dlib_detector.detect(frame) for frame in frames]


def test_dlib_finds_one_plausible_face_per_frame(clip):
    frames, detections = clip
    for frame, faces in zip(frames, detections):
        assert len(faces) == 1
        face = faces[0]
        height, width = frame.shape[:2]
        x1, y1, x2, y2 = face.box
        assert face.box.dtype == np.float32 and face.box.shape == (4,)
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        # A talking head: a face spanning 10-80 % of the frame width, roughly square.
        assert 0.1 * width < x2 - x1 < 0.8 * width
        assert 0.7 < (x2 - x1) / (y2 - y1) < 1.4
        assert face.score > 0


def test_dlib_landmarks_lie_on_the_face(clip):
    _, detections = clip
    for faces in detections:
        face = faces[0]
        assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
        size = face.box[2:] - face.box[:2]
        # dlib's box is tight (brows to lips); the jaw line runs a little outside it.
        low, high = face.box[:2] - 0.25 * size, face.box[2:] + 0.25 * size
        assert np.all((face.landmarks >= low) & (face.landmarks <= high))
        # The landmarks are not collapsed: they spread over most of the box.
        spread = face.landmarks.max(axis=0) - face.landmarks.min(axis=0)
        assert np.all(spread > 0.6 * size)


def test_anchors_have_the_official_orientation(clip):
    _, detections = clip
    for faces in detections:
        face = faces[0]
        (lx, ly), (rx, ry), (nx, ny) = face.anchors()
        # The first anchor is the image-left eyebrow, as the official template (x=17 before x=58) needs.
        assert lx < nx < rx
        assert ny > max(ly, ry)
        # Eyebrows and nose are apart by a sensible fraction of the face, not a degenerate triangle.
        width = face.box[2] - face.box[0]
        assert 0.3 * width < rx - lx < 0.9 * width
        assert 0.15 * width < ny - (ly + ry) / 2 < 0.6 * width
        # The left anchor is the mean of iBUG 17-21 (the eyebrow with the smaller x).
        assert np.all(np.abs(face.anchors()[0] - face.landmarks[17:22].mean(axis=0)) <= 1)


def test_anchors_are_stable_between_consecutive_frames(clip):
    _, detections = clip
    anchors = np.stack([faces[0].anchors() for faces in detections])
    # The heads move a few pixels a frame (demo1 drifts ~5 px); beyond that steady motion, the anchors jitter by
    # no more than the rounding to whole pixels.
    assert np.abs(np.diff(anchors, axis=0)).max() <= 10
    assert np.abs(np.diff(anchors, n=2, axis=0)).max() <= 3


@pytest.mark.parametrize(
    "frame",
    [np.zeros((720, 1280, 3), np.uint8), np.random.default_rng(0).integers(0, 256, (1920, 1080, 3), dtype=np.uint8)],
    ids=["blank", "noise"],
)
def test_no_face_in_a_blank_or_noise_frame(dlib_detector, frame):
    assert dlib_detector.detect(frame) == []


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (np.zeros((64, 64, 3), np.float32), "dtype float32"),
        (np.zeros((64, 64), np.uint8), r"\(64, 64\)"),
        (np.zeros((64, 64, 4), np.uint8), r"\(64, 64, 4\)"),
        ([[0, 0, 0]], "list"),
    ],
)
def test_bad_frames_are_refused(dlib_detector, frame, problem):
    with pytest.raises(InvalidFrameError, match=problem):
        dlib_detector.detect(frame)


def test_dlib_detect_scale_finds_the_same_face(dlib_detector, assets):
    frame = decode_frames(assets / "demo1_video.mp4", 1)[0]
    reference = dlib_detector.detect(frame)[0]
    coarse = create_detector("dlib", detect_scale=0.35).detect(frame)
    assert len(coarse) == 1
    # The landmarks come from the full frame either way; only the finder's box differs slightly.
    assert np.abs(coarse[0].anchors() - reference.anchors()).max() <= 4
    assert isinstance(dlib_detector, LandmarkDetector) and dlib_detector.name == "dlib"


def test_dlib_option_errors():
    with pytest.raises(ValueError, match="detect_scale"):
        create_detector("dlib", detect_scale=2.0)
    with pytest.raises(BackendUnavailableError, match="not found"):
        create_detector("dlib", predictor_path="/nonexistent/shape_predictor.dat")


# --- anchors and selection on synthetic faces ---------------------------------------------------------------------


def make_face(x1: float, y1: float, x2: float, y2: float, points: int = 68) -> Face:
    return Face(box=np.array([x1, y1, x2, y2]), landmarks=np.zeros((points, 2)), score=1.0)


def test_anchor_mapping_106_matches_the_official_point_sets():
    rng = np.random.default_rng(1)
    landmarks = rng.uniform(0, 500, (106, 2))
    points = np.round(landmarks)
    expected = np.round(
        [points[[43, 48, 49, 51, 50]].mean(axis=0), points[101:106].mean(axis=0), points[[74, 77, 83, 86]].mean(axis=0)]
    )
    anchors = Face(box=np.zeros(4), landmarks=landmarks, score=1.0).anchors()
    assert anchors.shape == (3, 2) and anchors.dtype == np.float32
    np.testing.assert_array_equal(anchors, expected)


def test_anchor_mapping_68_uses_brows_and_nose():
    landmarks = np.zeros((68, 2))
    landmarks[17:22] = [100, 50]
    landmarks[22:27] = [200, 50]
    landmarks[[29, 30, 31, 35]] = [[150, 90], [150, 100], [140, 104], [160, 104]]
    anchors = Face(box=np.zeros(4), landmarks=landmarks, score=1.0).anchors()
    np.testing.assert_array_equal(anchors, [[100, 50], [200, 50], [150, 100]])


def test_anchor_mapping_refuses_other_schemes():
    with pytest.raises(ValueError, match="no anchor mapping for 5"):
        make_face(0, 0, 1, 1, points=5).anchors()


def test_select_face():
    small_left = make_face(0, 0, 50, 50)
    big_middle = make_face(100, 0, 300, 200)
    mid_right = make_face(400, 0, 500, 100)
    faces = [mid_right, small_left, big_middle]
    assert select_face([]) is None
    assert select_face(faces) is big_middle
    assert select_face(faces, index=0) is small_left
    assert select_face(faces, index=2) is mid_right
    assert select_face(faces, index=-1) is mid_right
    assert select_face(faces, index=3) is None
    assert select_face(faces, at=(450, 50)) is mid_right
    assert select_face(faces, at=(60, 40)) is small_left  # in no box: nearest centre (25, 25)
    assert select_face(faces, at=(250, 600)) is None  # far from every face: no guess
    with pytest.raises(ValueError, match="not both"):
        select_face(faces, index=0, at=(0, 0))


def test_select_face_prefers_the_containing_box_over_a_nearer_centre():
    big = make_face(0, 0, 400, 400)  # centre (200, 200)
    small = make_face(390, 0, 430, 40)  # centre (410, 20), not containing the point
    assert select_face([small, big], at=(380, 60)) is big


# --- backend registry and the backends that cannot run here --------------------------------------------------------


def test_unknown_backend_lists_the_valid_names():
    with pytest.raises(ValueError, match="'nope'.*dlib, face-alignment, insightface"):
        create_detector("nope")
    assert set(BACKENDS) == {"dlib", "face-alignment", "insightface"}


def test_insightface_missing_model_folder(tmp_path):
    with pytest.raises(BackendUnavailableError, match=r"models/buffalo_l is missing"):
        create_detector("insightface", device="cpu", root=tmp_path)


def test_insightface_missing_package(tmp_path, monkeypatch):
    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "det_10g.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "insightface", None)  # makes the import fail even where it is installed
    monkeypatch.setitem(sys.modules, "insightface.app", None)
    with pytest.raises(BackendUnavailableError, match="pip install insightface"):
        create_detector("insightface", device="cpu", root=tmp_path)


def test_insightface_faces_map_to_face_objects(tmp_path, monkeypatch):
    """With a stand-in FaceAnalysis: boxes, 106 points and scores pass through, the frame reaches it unchanged, and
    the faces the official detector skips (small, oddly shaped, unsure) are dropped."""
    import types

    from latentsync.faces.backends import insightface_backend

    seen = {}

    class FakeAnalysis:
        def __init__(self, **kwargs):
            seen["init"] = kwargs

        def prepare(self, ctx_id, det_size):
            seen["prepare"] = (ctx_id, det_size)

        def get(self, frame):
            seen["frame"] = frame
            landmarks = np.tile(np.arange(106, dtype=np.float32)[:, None], (1, 2))
            boxes_scores = [
                ([10, 20, 110.7, 150], 0.9),  # the one usable face
                ([10, 20, 59.9, 150], 0.9),  # 49 px wide (whole pixels): too narrow for the official detector
                ([10, 20, 110, 99.5], 0.9),  # 79 px high: too low
                ([10, 20, 170, 120], 0.9),  # 1.6 times wider than high
                ([10, 20, 110, 150], 0.4),  # scored under 0.5
            ]
            return [
                types.SimpleNamespace(bbox=np.array(box), landmark_2d_106=landmarks, det_score=score)
                for box, score in boxes_scores
            ]

    pack = tmp_path / "models" / "buffalo_l"
    pack.mkdir(parents=True)
    (pack / "2d106det.onnx").write_bytes(b"")
    monkeypatch.setattr(insightface_backend, "require", lambda *_: types.SimpleNamespace(FaceAnalysis=FakeAnalysis))
    detector = create_detector("insightface", device="cpu", root=tmp_path)
    frame = np.full((8, 8, 3), [10, 20, 30], np.uint8)
    (face,) = detector.detect(frame)
    assert seen["prepare"] == (-1, (512, 512))
    assert seen["init"]["allowed_modules"] == ["detection", "landmark_2d_106"]
    np.testing.assert_array_equal(seen["frame"], frame)  # RGB as the official pipeline passed it, not BGR
    assert face.landmarks.shape == (106, 2) and face.score == pytest.approx(0.9)
    np.testing.assert_allclose(face.box, [10, 20, 110.7, 150])
    # Anchor means of the index sets: 43,48,49,51,50 -> 48.2 -> 48; 101..105 -> 103; 74,77,83,86 -> 80.
    np.testing.assert_array_equal(face.anchors(), [[48, 48], [103, 103], [80, 80]])


def test_face_alignment_refuses_to_download_when_told(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="weights not found: .*2DFAN4.*s3fd") as error:
        create_detector("face-alignment", device="cpu", allow_download=False)
    assert str(tmp_path) in str(error.value)  # says where they belong


def test_face_alignment_download_failure_says_so(tmp_path, monkeypatch):
    import face_alignment

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(face_alignment, "FaceAlignment", offline)
    with pytest.raises(BackendUnavailableError, match="could not fetch its weights.*no network"):
        create_detector("face-alignment", device="cpu")


def test_face_alignment_results_map_to_face_objects(monkeypatch):
    """With a stand-in FaceAlignment: one Face per (landmarks, box) pair; none when it finds nothing."""
    import face_alignment

    from latentsync.faces.backends import face_alignment_backend

    points = np.arange(136, dtype=np.float32).reshape(68, 2)
    results = {"value": ([points], None, [np.array([5, 6, 70, 80, 0.99])])}

    class FakeAlignment:
        def __init__(self, landmarks_type, device, **options):
            assert options["compile"] is False and device == "cpu"

        def get_landmarks_from_image(self, frame, return_bboxes):
            return results["value"]

    monkeypatch.setattr(face_alignment, "FaceAlignment", FakeAlignment)
    monkeypatch.setattr(face_alignment_backend, "weight_files", lambda *_: [])
    detector = create_detector("face-alignment", device="cpu")
    (face,) = detector.detect(np.zeros((90, 90, 3), np.uint8))
    np.testing.assert_array_equal(face.landmarks, points)
    np.testing.assert_array_equal(face.box, [5, 6, 70, 80])
    assert face.score == pytest.approx(0.99)
    results["value"] = (None, None, None)
    assert detector.detect(np.zeros((90, 90, 3), np.uint8)) == []


@pytest.mark.slow
def test_face_alignment_on_a_real_frame(assets):
    from latentsync.faces.backends.face_alignment_backend import weight_files

    missing = [f.name for f in weight_files() if not f.is_file()]
    if missing:
        pytest.skip(f"face-alignment weights not on disk ({', '.join(missing)}); tests never download them")
    frame = decode_frames(assets / "demo1_video.mp4", 1)[0]
    faces = create_detector("face-alignment", allow_download=False).detect(frame)
    assert len(faces) == 1
    (lx, _), (rx, _), (nx, _) = faces[0].anchors()
    assert lx < nx < rx
