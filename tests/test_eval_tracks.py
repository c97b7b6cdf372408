"""Face tracks for sync scoring, S3FD loading, and the `latentsync eval sync` command end to end."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from helpers.evaluation import write_s3fd, write_syncnet_v2

from latentsync.cli import main
from latentsync.eval.tracks import ShotDetector, crop_face, find_tracks, link_tracks
from latentsync.models.auxiliary.s3fd import S3FD, S3FDNet, anchors, decode
from latentsync.models.loading import CheckpointError


def moving_box(n: int, x: float, size: float = 150) -> list[np.ndarray]:
    return [np.array([x + i, 100, x + i + size, 100 + size, 0.99]) for i in range(n)]


def test_tracks_follow_each_face_and_drop_short_small_and_broken_ones():
    left, right = moving_box(80, 0), moving_box(80, 600)
    frames = [np.stack([b, a]) for a, b in zip(left, right)]
    frames[40:70] = [f[:1] for f in frames[40:70]]  # the left face is missed for 30 frames: its track breaks
    for i in range(10, 14):
        frames[i] = np.zeros((0, 5))  # a short gap in both tracks is bridged
    tiny = [np.array([300, 300, 340, 340, 0.99])]
    frames = [np.concatenate([f, tiny]) for f in frames]
    tracks = link_tracks(frames, start=100)
    assert [(t.first, len(t)) for t in tracks] == [(100, 80)]  # the left one is split into two tracks of <= 50
    assert tracks[0].boxes[0, 0] == 600 and tracks[0].boxes[-1, 0] == 679
    assert np.allclose(tracks[0].boxes[10:14, 0], [610, 611, 612, 613])  # interpolated over the gap


def test_crop_is_square_around_the_face_and_grey_off_frame():
    frame = np.zeros((400, 300, 3), np.uint8)
    frame[100:200, 100:200] = 255
    crop = crop_face(frame, cx=150, cy=150, size=50)  # rows 100..240, cols 80..220 of the frame
    assert crop.shape == (224, 224, 3)
    assert crop[20:140, 40:180].mean() > 250  # the face square fills the upper middle
    edge = crop_face(frame, cx=10, cy=10, size=50)
    assert (edge[:60, :60] == 110).all()  # off-frame is the official grey


def test_shot_detector_finds_a_cut():
    shots = ShotDetector()
    for i in range(60):
        shots(np.full((64, 64, 3), 20 if i < 30 else 230, np.uint8))
    assert shots.shots() == [(0, 30), (30, 60)]


def test_s3fd_loads_official_keys_and_decodes_anchors(tmp_path):
    net = S3FD.load(write_s3fd(tmp_path / "sfd_face.pth"), "cpu")
    keys = list(S3FDNet().state_dict())
    assert len(keys) == 65 and keys[:2] == ["vgg.0.weight", "vgg.0.bias"] and "L2Norm3_3.weight" in keys
    boxes = net.detect([np.zeros((64, 96, 3), np.uint8)] * 2, scale=1.0, threshold=0.0)
    assert len(boxes) == 2 and boxes[0].shape[1] == 5
    priors = anchors(64, 96, [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2), (1, 1)])
    assert priors.shape == (16 * 24 + 8 * 12 + 24 + 6 + 2 + 1, 4)
    assert torch.allclose(
        decode(torch.zeros(1, 4), priors[:1]),
        torch.tensor([[2 / 96 - 8 / 96, 2 / 64 - 8 / 64, 2 / 96 + 8 / 96, 2 / 64 + 8 / 64]]),
    )
    torch.save({"vgg.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="sfd_face.pth"):
        S3FD.load(tmp_path / "bad.pth")


@pytest.mark.slow
def test_track_and_crop_on_a_real_clip(assets):
    """demo1 with the project's dlib finder: one track over every frame, crops showing the face."""
    from latentsync.eval.finders import landmark_finder
    from latentsync.eval.tracks import crop_tracks
    from latentsync.faces import create_detector
    from latentsync.media import VideoReader

    frames = list(itertools.islice(VideoReader(assets / "demo1_video.mp4", fps=25), 56))
    detector = create_detector("dlib")
    tracks, count = find_tracks(frames, landmark_finder(detector))
    assert count == 56 and [(t.first, len(t)) for t in tracks] == [(0, 56)]
    crops = crop_tracks(frames, tracks)[0]
    assert crops.shape == (56, 224, 224, 3)
    face = detector.detect(np.ascontiguousarray(crops[30]))  # the crop shows one face, horizontally centred
    assert len(face) == 1 and abs(face[0].center[0] - 112) < 25


@pytest.mark.slow
def test_landmark_boxes_keep_one_track_where_dlibs_own_box_jumps(assets):
    """demo3 around frame 489, where dlib's box jumps between two pyramid sizes (IoU 0.49 with the frame before):
    the landmark finder's boxes overlap far above the tracker's 0.5, so the face stays one track."""
    from latentsync.eval.finders import landmark_finder
    from latentsync.faces import create_detector
    from latentsync.faces.geometry import box_iou
    from latentsync.media import VideoReader

    frames = list(itertools.islice(VideoReader(assets / "demo3_video.mp4", fps=25), 480, 500))
    detector = create_detector("dlib")
    boxes = [found[0, :4] for found in landmark_finder(detector)(frames)]
    overlaps = [box_iou(a, b) for a, b in itertools.pairwise(boxes)]
    assert min(overlaps) > 0.7, overlaps
    own = [detector.detect(frame)[0].box for frame in frames[8:10]]  # frames 488, 489: the jump is really there
    assert box_iou(*own) < 0.5
    tracks, _ = find_tracks(frames, landmark_finder(detector), min_track=15)
    assert [(t.first, len(t)) for t in tracks] == [(0, 20)]


@pytest.fixture
def weights(tmp_path):
    folder = tmp_path / "aux"
    folder.mkdir()
    write_syncnet_v2(folder / "syncnet_v2.model")
    return folder


@pytest.mark.slow
def test_cli_json_scores_a_folder_and_reports_failures(tmp_path, weights, golden_dir, capsys):
    """--cropped on the official crop clip and a broken file: the folder mean skips the failure, with its reason."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "crop.mp4").symlink_to(golden_dir / "syncnet_v2_eval_crop.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video")
    report = tmp_path / "report.html"
    code = main(
        [
            "eval",
            "sync",
            str(folder),
            "--cropped",
            "--weights",
            str(weights),
            "--device",
            "cpu",
            "--json",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"videos", "mean", "scored", "failed"} and (out["scored"], out["failed"]) == (1, 1)
    assert out["frames"].startswith("official round trip")  # the published kind unless --fast-decode
    broken, good = out["videos"]  # sorted by name
    assert broken["path"].endswith("broken.mp4") and broken["error"] and "conf" not in broken
    assert set(good) >= {"path", "offset", "min_dist", "conf", "tracks", "error"} and good["error"] is None
    assert good["tracks"][0]["frames"] == 60 and -15 <= good["offset"] <= 15
    assert out["mean"] == {"offset": good["offset"], "min_dist": good["min_dist"], "conf": good["conf"]}
    page = report.read_text()
    assert "crop.mp4" in page and "broken.mp4" in page and "data:image/png;base64" in page


def test_cli_names_the_missing_weight_and_the_command(tmp_path, golden_dir, capsys):
    code = main(["eval", "sync", str(golden_dir / "syncnet_v2_eval_crop.mp4"), "--weights", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "syncnet_v2.model" in err and "latentsync download" in err and "--with-training" in err
