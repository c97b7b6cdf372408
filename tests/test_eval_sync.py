"""LSE-C / LSE-D: the original SyncNet, its scoring procedure against the official run, and the offset search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.evaluation import golden_syncnet_v2_state, write_syncnet_v2

from latentsync.errors import InvalidArgumentError
from latentsync.eval.sync import SyncScorer, distance_table, offset_and_confidence, window_count
from latentsync.models.auxiliary.syncnet_v2 import SyncNetV2
from latentsync.models.loading import CheckpointError
from latentsync.testing import read_manifest


def test_state_dict_matches_official_manifest():
    with torch.device("meta"):
        net = SyncNetV2()
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == [(key, shape) for key, shape, _ in read_manifest("syncnet_v2")]


def test_loads_legacy_file_and_rejects_foreign_keys(tmp_path):
    scorer = SyncScorer.load(write_syncnet_v2(tmp_path / "syncnet_v2.model"), device="cpu")
    assert not scorer.model.training
    bad = SyncNetV2().state_dict() | {"extra.weight": torch.zeros(1)}
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(CheckpointError, match="extra.weight"):
        SyncScorer.load(tmp_path / "bad.model")


@pytest.mark.parity
@pytest.mark.slow
def test_reproduces_official_scorer(golden_dir):
    """The official evaluate() on the golden crop: MFCC, features, distance table, offset, min_dist and conf."""
    golden = torch.load(golden_dir / "syncnet_v2_eval.pt", weights_only=True)
    model = SyncNetV2()
    model.load_state_dict(golden_syncnet_v2_state(golden_dir))
    frames = golden["inputs"]["frames_bgr_u8"].permute(0, 2, 3, 1).numpy()[..., ::-1]
    frames = np.concatenate([frames, frames[-1:]])  # the official run read 60 frames; the 60th is never compared
    audio = golden["inputs"]["audio_int16"].numpy().astype(np.float32) / 32768
    details = SyncScorer(model).details(np.ascontiguousarray(frames), audio)
    out = golden["outputs"]
    assert np.array_equal(details.mfcc, out["mfcc"].numpy())
    for got, key in [
        (details.video_features, "im_feat"),
        (details.audio_features, "cc_feat"),
        (details.distances, "dists"),
        (details.mean_distances, "mean_dists"),
    ]:
        assert got.shape == out[key].shape and (got - out[key]).abs().max() <= 1e-4, key
    assert details.score.offset == int(out["av_offset"]) == -15
    assert abs(details.score.min_dist - float(out["min_dist"])) <= 1e-4
    assert abs(details.score.conf - float(out["conf"])) <= 1e-4


@pytest.mark.parametrize("lag", [-4, 0, 3])
def test_offset_found_for_embeddings_in_sync_at_a_known_shift(lag):
    """Audio features that are the video features delayed by k windows give offset -k, as the official code does."""
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(60, 16, generator=gen)
    audio = torch.roll(video, lag, 0) + 0.01 * torch.randn(60, 16, generator=gen)
    score, mean = offset_and_confidence(distance_table(video, audio))
    assert score.offset == -lag
    assert score.conf > 1 and score.min_dist < 0.5
    assert mean.shape == (31,)


def test_window_count_follows_the_shorter_stream():
    assert window_count(60, 38912) == 55
    assert window_count(100, 640 * 30) == 25
    assert window_count(5, 16000) == 0


def test_too_short_input_is_a_clear_error(tmp_path):
    scorer = SyncScorer(SyncNetV2())
    with pytest.raises(InvalidArgumentError, match="too short"):
        scorer.score_crops(np.zeros((5, 224, 224, 3), np.uint8), np.zeros(16000, np.float32))
