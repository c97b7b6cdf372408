"""Training data: the SyncNet mel and the window draws as the official code makes them, the datasets on real aligned
clips, the caches keyed per clip, and unusable clips replaced and counted instead of stopping training."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.training import overrides
from torch.utils.data import DataLoader

from latentsync.audio.syncnet_mel import mel_window, melspectrogram
from latentsync.config import load_config
from latentsync.data.clips import syncnet_windows, unet_windows
from latentsync.data.sources import DataError, data_overrides, list_clips
from latentsync.data.syncnet_dataset import SyncNetDataset
from latentsync.data.unet_dataset import UNetDataset
from latentsync.testing import GOLDEN


@pytest.fixture(scope="module")
def golden_helpers() -> dict:
    return torch.load(GOLDEN / "training_helpers.pt", weights_only=True)["outputs"]


@pytest.mark.parity
def test_syncnet_mel_matches_the_official(golden_helpers: dict) -> None:
    golden = golden_helpers["syncnet_mel"]
    mel = melspectrogram(golden["wav_16k_mono"].numpy())
    assert mel.shape == (80, 801) and mel.dtype == np.float64
    assert np.abs(mel - golden["mel"].numpy()).max() <= 1e-4
    window = mel_window(mel, 10)
    assert window.shape == (1, 80, 52) and torch.equal(window[0], torch.from_numpy(mel[:, 32:84]).float())
    with pytest.raises(ValueError, match="past the audio"):
        mel_window(mel, 240)  # column 768 + 52 > 801


@pytest.mark.parity
def test_window_draws_follow_the_official_sampling(golden_helpers: dict) -> None:
    sampling = golden_helpers["frame_sampling"]
    random.seed(12345)
    drawn = [unet_windows(random, 250) for _ in range(5)]
    expected = [(d["start_idx"], d["ref_start_idx"]) for d in sampling["python_random_seed12345_n250_first5"]]
    assert drawn == expected
    rng = random.Random(0)
    for n in (48, 49, 64, 250):
        stats = sampling["stats"]
        pairs = np.array([unet_windows(rng, n) for _ in range(3000)])
        assert pairs.min() == stats[f"unet_n{n}"]["start_min"] and pairs.max() == stats[f"unet_n{n}"]["start_max"]
        assert np.abs(pairs[:, 0] - pairs[:, 1]).min() == 16
        shifted = np.array([syncnet_windows(rng, n) for _ in range(3000)])
        gaps = np.abs(shifted[:, 0] - shifted[:, 1])
        assert gaps.min() == 1
        assert abs((gaps < 16).mean() - stats[f"syncnet_n{n}"]["frac_overlapping(gap<16)"]) < 0.04


def test_sources_from_folder_or_list(tmp_path: Path) -> None:
    (tmp_path / "a" / "x").mkdir(parents=True)
    for name in ("a/x/00001.mp4", "a/00001.mp4", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    clips = list_clips(data_dir=tmp_path / "a")
    assert [c.relative for c in clips] == ["00001.mp4", "x/00001.mp4"]
    listing = tmp_path / "list.txt"
    listing.write_text("a/x/00001.mp4\n\n")
    assert [c.path for c in list_clips(fileslist=listing)] == [tmp_path / "a/x/00001.mp4"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video clips"):
        list_clips(data_dir=tmp_path / "empty")
    with pytest.raises(DataError, match="--data"):
        list_clips()
    assert data_overrides(listing)[0] == f"data.train_fileslist={listing}"


@pytest.fixture()
def unet_cfg(tiny_training: Path, tmp_path: Path):
    return load_config(
        tiny_training / "unet_tiny.yaml",
        [
            *overrides(tiny_training, "unet"),
            f"data.audio_embeds_cache_dir={tmp_path}/cache",
            f"data.audio_mel_cache_dir={tmp_path}/cache",
        ],
    )


def test_unet_samples_of_real_clips(aligned_clips: Path, unet_cfg, tmp_path: Path) -> None:
    dataset = UNetDataset(list_clips(data_dir=aligned_clips), unet_cfg, seed=3)
    item = dataset[1]
    assert item["gt"].shape == item["ref"].shape == (16, 3, 64, 64) and item["replaced"] == 0
    assert -1 <= item["gt"].min() < -0.5 and 0.5 < item["gt"].max() <= 1
    assert not torch.equal(item["gt"], item["ref"])  # a different moment of the clip
    assert item["mask"].shape == (16, 1, 64, 64) and 0 <= item["mask"].min() < item["mask"].max() <= 1
    assert item["mask"][0, 0, 45, 32] == 0 and item["mask"][0, 0, 5, 32] == 1  # mouth regenerated, eyes kept
    assert item["mel"].shape == (1, 80, 52) and item["audio_embeds"].shape == (16, 10 * 3, 64)
    again = UNetDataset(list_clips(data_dir=aligned_clips), unet_cfg, seed=3)[1]
    assert all(torch.equal(item[k], again[k]) for k in ("gt", "ref", "audio_embeds", "mel"))  # cache hit, same draw
    cached = sorted(p.parent.name for p in (tmp_path / "cache").rglob("*.pt"))
    assert cached == ["syncnet_mel", "whisper"]
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1]["gt"], item["gt"])
    batch = next(iter(DataLoader(dataset, batch_size=2, num_workers=0)))
    assert batch["gt"].shape == (2, 16, 3, 64, 64) and batch["audio_embeds"].shape == (2, 16, 30, 64)


def test_cache_entries_are_per_clip_not_per_file_name(aligned_clips: Path, unet_cfg, tmp_path: Path) -> None:
    for folder, source in (("one", "demo1"), ("two", "demo2")):
        (tmp_path / "data" / folder).mkdir(parents=True)
        shutil.copy(aligned_clips / f"{source}.mp4", tmp_path / "data" / folder / "00001.mp4")
    dataset = UNetDataset(list_clips(data_dir=tmp_path / "data"), unet_cfg, seed=0)
    a, b = dataset[0], dataset[1]
    assert len(list((tmp_path / "cache" / "syncnet_mel").iterdir())) == 2
    mels = [dataset.reader.mel(clip) for clip in dataset.clips]
    assert not torch.equal(mels[0][:, :100], mels[1][:, :100]) and a["mel"].shape == b["mel"].shape


def test_unusable_clips_are_replaced_and_counted(aligned_clips: Path, unet_cfg, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video")
    shutil.copy(aligned_clips / "demo3.mp4", folder / "good.mp4")
    dataset = UNetDataset(list_clips(data_dir=folder), unet_cfg, seed=0)
    dataset.check_usable()
    item = dataset[0]  # broken.mp4 sorts first: replaced by good.mp4
    assert item["replaced"] >= 1 and dataset.reader.replaced["undecodable"] == 1
    syncnet_cfg = load_config(Path(unet_cfg.data.syncnet_config_path), ["data.resolution=64"])
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "broken.mp4").write_bytes(b"")
    with pytest.raises(DataError, match="none of the 1 clips is usable"):
        SyncNetDataset(list_clips(data_dir=only_bad), syncnet_cfg, 0).check_usable()
    with pytest.raises(DataError, match="no usable clip"):
        SyncNetDataset(list_clips(data_dir=only_bad), syncnet_cfg, 0)[0]


def test_syncnet_samples_are_half_in_sync(aligned_clips: Path, tiny_training: Path) -> None:
    cfg = load_config(tiny_training / "syncnet_tiny.yaml", overrides(tiny_training, "syncnet"))
    dataset = SyncNetDataset(list_clips(data_dir=aligned_clips), cfg, seed=0)
    labels = [dataset[i % 3]["y"].item() for i in range(3)]
    dataset.set_epoch(1)
    labels += [dataset[i % 3]["y"].item() for i in range(3)]
    item = dataset[0]
    assert item["frames"].shape == (16, 3, 64, 64) and item["mel"].shape == (1, 80, 52)
    assert set(labels) == {0.0, 1.0}


def test_cache_command_fills_the_caches(aligned_clips: Path, tiny_training: Path, tmp_path: Path, capsys) -> None:
    from latentsync import cli

    cache = tmp_path / "cache"
    args = [
        "--config",
        str(tiny_training / "unet_tiny.yaml"),
        "--data",
        str(aligned_clips),
        *overrides(tiny_training, "unet"),
        f"data.audio_embeds_cache_dir={cache}",
        f"data.audio_mel_cache_dir={cache}",
    ]
    assert cli.main(["train", "cache", *args]) == 0
    assert "3 cached" in capsys.readouterr().out
    assert len(list((cache / "whisper").glob("*.pt"))) == len(list((cache / "syncnet_mel").glob("*.pt"))) == 3
    assert cli.main(["train", "syncnet", *args]) == 2  # a U-Net config given to the SyncNet trainer
    assert "latentsync train unet" in capsys.readouterr().err
    assert cli.main(["train", "unet", *args, "data.batch_sise=2"]) == 2
    assert "batch_sise" in capsys.readouterr().err


def test_latent_moments_cache(aligned_clips: Path, unet_cfg, tmp_path: Path) -> None:
    """With train.latent_cache_dir, samples carry the VAE moments of their frames, as encoding them would give."""
    from latentsync.models.vae import load_vae

    unet_cfg.train.latent_cache_dir = str(tmp_path / "latents")
    item = UNetDataset(list_clips(data_dir=aligned_clips), unet_cfg, seed=3)[0]
    assert item["gt_moments"].shape == item["ref_moments"].shape == item["masked_moments"].shape == (16, 8, 8, 8)
    vae = load_vae(unet_cfg.weights.vae)
    with torch.no_grad():
        dist = vae.encode(item["gt"]).latent_dist
        masked = vae.encode(item["gt"] * item["mask"]).latent_dist
    assert torch.allclose(item["gt_moments"][:, :4], dist.mean, atol=2e-3)
    assert torch.allclose(item["gt_moments"][:, 4:], dist.logvar, atol=2e-2)
    assert torch.allclose(item["masked_moments"][:, :4], masked.mean, atol=2e-3)
    assert len(list((tmp_path / "latents" / "vae_moments").glob("*.pt"))) == 1
