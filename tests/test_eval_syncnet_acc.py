"""StableSyncNet accuracy: the official SyncNet mel, seeded pair sampling, and the counting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.evaluation import write_face_clips

from latentsync.eval.syncnet_acc import accuracy, sample_pairs, syncnet_mel


@pytest.mark.parity
def test_mel_matches_the_official_syncnet_mel(golden_dir):
    golden = torch.load(golden_dir / "training_helpers.pt", weights_only=True)["outputs"]["syncnet_mel"]
    mel = syncnet_mel(golden["wav_16k_mono"].numpy())
    assert mel.shape == tuple(golden["mel"].shape)
    assert np.abs(mel - golden["mel"].numpy()).max() <= 1e-4


class SameEmbedding(torch.nn.Module):
    """Says every pair is in sync (cosine 1), so the accuracy is the share of in-sync pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images, mels):
        assert images.shape[1:] == (48, 64, 128) and mels.shape[1:] == (1, 80, 52)
        ones = torch.ones(len(images), 4)
        return ones, ones


@pytest.mark.slow
def test_pairs_are_seeded_half_in_sync_and_counted(tmp_path, assets):
    videos = write_face_clips(tmp_path, assets)
    first = list(sample_pairs(videos, 12, seed=42, size=128))
    again = list(sample_pairs(videos, 12, seed=42, size=128))
    assert all(np.array_equal(a[0], b[0]) and a[2] == b[2] for a, b in zip(first, again))
    assert first[0][0].shape == (16, 128, 128, 3) and first[0][1].shape == (1, 80, 52)
    positives = sum(p[2] for p in first)
    result = accuracy(SameEmbedding(), iter(first), batch=5)
    assert result["pairs"] == 12 and result["correct"] == positives and 0 < positives < 12
