"""Locating, downloading (with the hub replaced by a fake) and loading the official files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

import latentsync
from latentsync import cli
from latentsync.hub import MissingCheckpointError, checkpoint_paths
from latentsync.models import VAE_SCALING_FACTOR, CheckpointError, load_vae


class FakeHub:
    """Stands in for huggingface_hub: writes a small file wherever a download would land."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def hf_hub_download(self, repo_id: str, filename: str, local_dir: Path, token=None) -> str:
        if self.fail:
            raise ConnectionError("no route to host")
        self.calls.append((repo_id, filename))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"weights")
        return str(target)

    def snapshot_download(self, repo_id: str, allow_patterns, local_dir: Path, token=None) -> str:
        self.calls.append((repo_id, ",".join(allow_patterns)))
        (Path(local_dir) / "auxiliary").mkdir(parents=True, exist_ok=True)
        return str(local_dir)


@pytest.fixture
def fake_hub(monkeypatch) -> FakeHub:
    import huggingface_hub

    hub = FakeHub()
    monkeypatch.setattr(latentsync.hub, "check_hub_reachable", lambda files: None)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    return hub


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "latentsync", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"latentsync {latentsync.__version__}"


def test_download_lays_out_the_files_the_runtime_looks_for(tmp_path, fake_hub, capsys) -> None:
    assert cli.main(["download", "--version", "1.5", "--dir", str(tmp_path)]) == 0
    paths = checkpoint_paths("1.5", tmp_path)
    for path in (paths.unet, paths.whisper, paths.vae / "config.json"):
        assert paths.require(path, "file") == path
    assert ("ByteDance/LatentSync-1.5", "latentsync_unet.pt") in fake_hub.calls
    assert not paths.syncnet.exists()
    assert str(paths.folder) in capsys.readouterr().out

    assert cli.main(["download", "--version", "1.6", "--dir", str(tmp_path), "--with-training"]) == 0
    paths16 = checkpoint_paths("1.6", tmp_path)
    assert paths16.syncnet.exists() and paths16.auxiliary.is_dir()
    assert ("ByteDance/LatentSync-1.6", "auxiliary/*") in fake_hub.calls


def test_failed_download_is_a_clear_error(tmp_path, fake_hub, capsys) -> None:
    fake_hub.fail = True
    assert cli.main(["download", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "download from the Hugging Face hub failed" in err and "no route to host" in err


def test_missing_file_names_it_and_the_download_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LATENTSYNC_CHECKPOINTS", str(tmp_path / "ckpts"))
    paths = checkpoint_paths("1.6")
    with pytest.raises(MissingCheckpointError) as info:
        paths.require(paths.unet, "U-Net checkpoint")
    message = str(info.value)
    assert str(paths.unet) in message
    assert f"latentsync download --model-version 1.6 --dir {tmp_path / 'ckpts'}" in message


def test_unknown_version_is_rejected() -> None:
    with pytest.raises(latentsync.errors.LatentSyncError, match="1.5"):
        checkpoint_paths("2.0")


def test_vae_loads_from_a_local_diffusers_folder(tmp_path) -> None:
    tiny = AutoencoderKL(
        block_out_channels=[32, 32],
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=32,
        scaling_factor=1.0,
    )
    tiny.save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path / "vae", dtype=torch.float32)
    assert vae.config.scaling_factor == VAE_SCALING_FACTOR
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(image).latent_dist.mode()
        assert latents.shape == (1, 4, 16, 16)
        assert vae.decode(latents).sample.shape == image.shape

    with pytest.raises(CheckpointError, match="latentsync download"):
        load_vae(tmp_path / "missing")


def test_infer_fetches_only_the_missing_default_files(tmp_path, fake_hub, monkeypatch) -> None:
    from latentsync.pipelines import lipsync

    monkeypatch.setattr(lipsync.LipsyncPipeline, "from_pretrained", classmethod(lambda cls, **kw: kw))
    args = cli.build_parser().parse_args(
        [
            "infer",
            "--video",
            "v.mp4",
            "--audio",
            "a.wav",
            "--output",
            "o.mp4",
            "--checkpoints",
            str(tmp_path),
            "--unet-checkpoint",
            "mine.pt",
            "--whisper-checkpoint",
            "tiny.pt",
        ]
    )
    assert cli.load_pipeline(args)["unet_checkpoint"] == "mine.pt"
    assert {name for _, name in fake_hub.calls} == {"config.json", "diffusion_pytorch_model.safetensors"}
