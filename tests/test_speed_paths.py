"""The fast paths of the non-network work: following a face instead of scanning every frame for it, encoding in a
background thread, and decoding ahead of the consumer. Each must give what the plain path gives."""

from __future__ import annotations

import threading

import av
import cv2
import numpy as np
import pytest

from latentsync.faces import Face, create_detector, select_face, track_faces
from latentsync.faces.track import FaceFollower
from latentsync.media import MediaError, VideoReader, VideoWriter, probe
from latentsync.media.reader import in_background
from latentsync.testing import psnr

FRAMES = 20  # of demo1: two whole-frame detections at the default spacing of 10


@pytest.fixture(scope="module")
def detector():
    return create_detector("dlib")


@pytest.fixture(scope="module")
def clip(assets) -> list[np.ndarray]:
    return [frame for _, frame in zip(range(FRAMES), VideoReader(assets / "demo1_video.mp4"))]


@pytest.fixture(scope="module")
def per_frame(clip, detector) -> list[Face]:
    """The face a whole-frame detection finds in each frame (demo1 has one in every frame)."""
    faces = [select_face(detector.detect(frame)) for frame in clip]
    assert all(face is not None for face in faces)
    return faces


def test_following_gives_the_anchors_of_per_frame_detection(clip, detector, per_frame):
    follower = FaceFollower(detector, redetect_every=10)
    faces = [follower(frame) for frame in clip]
    assert follower.detections == 2  # frames 0 and 10; the others were searched near the previous face
    assert all(face is not None for face in faces)
    gaps = np.array([np.abs(face.anchors() - ref.anchors()).max() for face, ref in zip(faces, per_frame)])
    assert gaps.max() <= 2  # whole pixels, as the alignment sees them
    assert gaps.mean() <= 1.2
    assert (gaps[[0, 10]] == 0).all()  # whole-frame detections are the per-frame ones


def cover_face(frame: np.ndarray, face: Face) -> np.ndarray:
    """The frame with the face (box grown by half its size) painted over in the frame's mean colour."""
    out = frame.copy()
    x1, y1, x2, y2 = face.box
    pad_x, pad_y = (x2 - x1) / 2, (y2 - y1) / 2
    out[max(int(y1 - pad_y), 0) : int(y2 + pad_y), max(int(x1 - pad_x), 0) : int(x2 + pad_x)] = frame.mean(axis=(0, 1))
    return out


def test_frames_without_a_face_are_reported_and_the_face_is_found_again(clip, detector, per_frame):
    # 6 frames with the face, 3 with it painted over (the rest of the frame unchanged), a blank frame, 6 with it.
    frames = clip[:6] + [cover_face(clip[i], per_frame[i]) for i in (6, 7, 8)] + [np.zeros_like(clip[0])]
    frames += clip[10:16]
    expected = [True] * 6 + [False] * 4 + [True] * 6
    follower = FaceFollower(detector, redetect_every=10)
    faces = [follower(frame) for frame in frames]
    assert [face is not None for face in faces] == expected
    # Frame 0, the lost face at frame 6 (the local search finds nothing, nor does the whole frame), each frame of
    # the gap, and the first frame after it: from there the face is followed again.
    assert follower.detections == 1 + 4 + 1
    after = [(face, per_frame[10 + k]) for k, face in enumerate(faces[10:])]
    assert max(np.abs(face.anchors() - ref.anchors()).max() for face, ref in after) <= 2

    track = track_faces(frames, detector, 256, progress=False)
    assert track.found.tolist() == expected
    assert np.isnan(track.matrices[~track.found]).all() and np.isfinite(track.matrices[track.found]).all()


def test_detect_near_looks_only_around_the_box(clip, detector, per_frame):
    frame, face = clip[0], per_frame[0]
    near = detector.detect_near(frame, face.box)
    assert np.abs(near.anchors() - face.anchors()).max() <= 2
    below = face.box + np.array([0, 1, 0, 1], np.float32) * 900  # same size, well below the face: the torso
    assert detector.detect_near(frame, below) is None
    assert detector.detect_near(frame, np.array([5000, 5000, 5100, 5100])) is None  # outside the frame
    with pytest.raises(ValueError, match="box"):
        detector.detect_near(frame, np.array([10, 10, 5, 20]))


class PlainDetector:
    """A stand-in backend without local search that finds the same face everywhere and counts its calls."""

    name = "plain"

    def __init__(self) -> None:
        self.face = Face(box=np.array([10, 10, 50, 50]), landmarks=np.zeros((68, 2)), score=1.0)
        self.calls = {"detect": 0, "detect_near": 0}

    def detect(self, frame):
        self.calls["detect"] += 1
        return [self.face]


class FollowingDetector(PlainDetector):
    """The same with a local search that finds the face again, or (near_finds=False) never does."""

    def __init__(self, near_finds: bool = True) -> None:
        super().__init__()
        self.near_finds = near_finds

    def detect_near(self, frame, box):
        self.calls["detect_near"] += 1
        np.testing.assert_array_equal(box, self.face.box)
        return self.face if self.near_finds else None


class FittingDetector(FollowingDetector):
    """The same that can also fit landmarks to a box without searching."""

    def __init__(self) -> None:
        super().__init__()
        self.calls["landmarks_at"] = 0

    def landmarks_at(self, frame, box):
        self.calls["landmarks_at"] += 1
        np.testing.assert_allclose(box, self.face.box)  # the face did not move: the box stays
        return self.face


def test_whole_frame_detection_schedule():
    frame = np.zeros((8, 8, 3), np.uint8)

    def run(detector, frames=25, **options):
        follower = FaceFollower(detector, **options)
        for _ in range(frames):
            follower(frame)
        assert follower.detections == detector.calls["detect"]
        return detector.calls

    assert run(FollowingDetector(), redetect_every=10) == {"detect": 3, "detect_near": 22}
    assert run(FollowingDetector(), redetect_every=None) == {"detect": 25, "detect_near": 0}  # turned off
    assert run(FollowingDetector(), redetect_every=1) == {"detect": 25, "detect_near": 0}
    # Every local search fails: each is followed by a whole-frame detection.
    assert run(FollowingDetector(near_finds=False)) == {"detect": 25, "detect_near": 24}
    assert run(PlainDetector()) == {"detect": 25, "detect_near": 0}  # a backend without local search
    with pytest.raises(ValueError, match="redetect_every"):
        FaceFollower(FollowingDetector(), redetect_every=0)
    # Searched only every 5th frame (a local search at 5, 10, 15, 20), landmarks fitted in the others.
    calls = run(FittingDetector(), redetect_every=25, confirm_every=5)
    assert calls == {"detect": 1, "detect_near": 4, "landmarks_at": 20}
    assert run(FittingDetector(), confirm_every=1)["landmarks_at"] == 0  # the default: every frame searched
    assert run(FollowingDetector(), confirm_every=5)["detect_near"] == 22  # a backend that cannot fit: ignored
    with pytest.raises(ValueError, match="confirm_every"):
        FaceFollower(FittingDetector(), confirm_every=0)


def test_fitting_between_searches_keeps_the_anchors_and_notices_a_face_gone_for_k_frames(clip, detector, per_frame):
    follower = FaceFollower(detector, redetect_every=25, confirm_every=5)
    faces = [follower(frame) for frame in clip]
    gaps = np.array([np.abs(face.anchors() - ref.anchors()).max() for face, ref in zip(faces, per_frame)])
    assert gaps.max() <= 2 and gaps.mean() <= 1.2  # as close as searching every frame
    # The face painted over in frames 5-9: the search at frame 5 misses it, and so does every frame until it returns.
    frames = clip[:5] + [cover_face(clip[i], per_frame[i]) for i in range(5, 10)] + clip[10:16]
    follower = FaceFollower(detector, redetect_every=25, confirm_every=5)
    assert [follower(frame) is not None for frame in frames] == [True] * 5 + [False] * 5 + [True] * 6


# --- keeping the chosen face when there are several ---------------------------------------------------------------


def two_people(assets, frames: int = 40) -> list[np.ndarray]:
    """demo1's speaker on the left and demo3's on the right, the right one scaled so that it is the larger face
    in frames 10-19 and 30-39 and the smaller one otherwise (what a whole-frame scan sees changes at every scan)."""
    left = [frame for _, frame in zip(range(frames), VideoReader(assets / "demo1_video.mp4"))]
    right = [frame for _, frame in zip(range(frames), VideoReader(assets / "demo3_video.mp4"))]
    canvas = []
    for i, (a, b) in enumerate(zip(left, right)):
        tile_a = cv2.resize(a[500:980, 360:840], (360, 360), interpolation=cv2.INTER_AREA)  # face about 130 px
        size = 450 if (i // 10) % 2 else 270  # demo3's face: about 200 or 120 px
        tile_b = cv2.resize(b[400:880, 340:820], (size, size), interpolation=cv2.INTER_AREA)
        frame = np.full((470, 850, 3), 40, np.uint8)
        frame[10:370, 10:370] = tile_a
        frame[10 : 10 + size, 390 : 390 + size] = tile_b
        canvas.append(frame)
    return canvas


def test_the_chosen_face_is_kept_when_the_other_grows_larger(assets, detector):
    frames = two_people(assets)
    largest = [select_face(detector.detect(frame)) for frame in frames[::10]]
    assert [face.center[0] < 380 for face in largest] == [True, False, True, False]  # the scans disagree

    follower = FaceFollower(detector)
    followed = [follower(frame) for frame in frames]
    assert all(face is not None and face.center[0] < 380 for face in followed)  # always the left speaker
    pinned = FaceFollower(detector, at=(600, 150))
    assert all(pinned(frame).center[0] > 380 for frame in frames)  # --face-at picks the other one, and keeps it


class TwoFaces:
    """Whole-frame detection of two real faces (demo1's landmarks, and a larger copy to the right); the right one
    is out of the picture in calls 3 and 4."""

    name = "two"

    def __init__(self, landmarks: np.ndarray) -> None:
        self.left = Face(box=np.array([0, 0, 40, 40]), landmarks=landmarks, score=1.0)
        self.right = Face(box=np.array([100, 0, 150, 50]), landmarks=landmarks * 1.2 + [900, 30], score=1.0)
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        return [self.left] if self.calls in (3, 4) else [self.left, self.right]


def test_a_new_choice_is_made_only_when_the_face_is_gone(per_frame):
    frame = np.zeros((8, 8, 3), np.uint8)
    follower = FaceFollower(TwoFaces(per_frame[0].landmarks))
    chosen = [follower(frame) for _ in range(6)]
    names = ["right" if face.box[0] == 100 else "left" for face in chosen]
    # the larger (right) face first; when it is gone the left one, which is then kept when the right one returns
    assert names == ["right", "right", "left", "left", "left", "left"]


# --- encoding in the background ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_frames(clip) -> list[np.ndarray]:
    return [cv2.resize(frame, (270, 480), interpolation=cv2.INTER_AREA) for frame in clip[:12]]


def test_writer_encodes_its_own_copy_of_each_frame(tmp_path, small_frames):
    path = tmp_path / "out.mp4"
    buffer = np.empty_like(small_frames[0])
    with VideoWriter(path, 270, 480) as writer:
        for frame in small_frames:
            buffer[:] = frame
            writer.write(buffer)
            buffer[:] = 0  # the caller reuses its array at once; the queued frame must not change
    decoded = list(VideoReader(path))
    assert len(decoded) == len(small_frames) == probe(path).frame_count
    assert min(psnr(a, b) for a, b in zip(decoded, small_frames)) > 35


@pytest.mark.parametrize(
    ("failure", "raised", "message"),
    [
        (RuntimeError("encoder broke"), RuntimeError, "encoder broke"),
        (av.error.FFmpegError(22, "Invalid argument"), MediaError, "encoding failed.*Invalid argument"),
    ],
)
@pytest.mark.parametrize("frames", [3, 12], ids=["raised at exit", "raised by write"])
def test_encoder_thread_errors_reach_the_caller_and_leave_no_file(
    tmp_path, small_frames, monkeypatch, failure, raised, message, frames
):
    encode = VideoWriter._encode
    done = []

    def failing(self, rgb):
        if len(done) == 2:
            raise failure
        encode(self, rgb)
        done.append(1)

    monkeypatch.setattr(VideoWriter, "_encode", failing)
    path = tmp_path / "out.mp4"
    with pytest.raises(raised, match=message):
        with VideoWriter(path, 270, 480, audio=np.zeros(16000, np.float32)) as writer:
            for frame in small_frames[:frames]:
                writer.write(frame)
                if frames > 3:
                    writer._worker.join(0.05)  # let the thread reach the failure before the block ends
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("encode ")]


# --- decoding ahead ------------------------------------------------------------------------------------------------


def test_read_ahead_gives_the_same_frames_and_stops_with_the_consumer(assets, clip):
    reader = VideoReader(assets / "demo1_video.mp4", read_ahead=3)
    for index, frame in enumerate(reader):
        np.testing.assert_array_equal(frame, clip[index])
        if index == 4:
            break  # the background decoder must stop and close the file
    assert not [t for t in threading.enumerate() if t.name == "read ahead"]
    with pytest.raises(ValueError, match="read_ahead"):
        VideoReader(assets / "demo1_video.mp4", read_ahead=-1)


def test_in_background_passes_items_then_the_error_and_closes_the_producer():
    closed = []

    def produce(fail_at: int):
        try:
            for item in range(10):
                if item == fail_at:
                    raise OSError(f"failed at {item}")
                yield item
        finally:
            closed.append(threading.current_thread().name)

    got = []
    with pytest.raises(OSError, match="failed at 6"):
        for item in in_background(lambda: produce(6), depth=2):
            got.append(item)
    assert got == list(range(6)) and closed == ["read ahead"]

    early = in_background(lambda: produce(99), depth=2)
    assert [next(early), next(early)] == [0, 1]
    early.close()  # the consumer stops: the producer is closed before close() returns
    assert closed == ["read ahead", "read ahead"]
    assert list(in_background(lambda: produce(99), depth=1)) == list(range(10))
