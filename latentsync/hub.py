"""Where the official weights live on disk, and the `latentsync download` command that puts them there.

Layout under the checkpoints folder (default `./checkpoints`, or $LATENTSYNC_CHECKPOINTS):

    v1.6/latentsync_unet.pt      v1.6/whisper/tiny.pt      v1.6/stable_syncnet.pt (--with-training)
    v1.5/...                     sd-vae-ft-mse/ (diffusers folder, shared by both versions)
    v1.6/auxiliary/ (--with-training: the official repository's auxiliary models)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from latentsync.errors import InvalidArgumentError, LatentSyncError

HUB_REPOS = {"1.5": "ByteDance/LatentSync-1.5", "1.6": "ByteDance/LatentSync-1.6"}
VAE_REPO = "stabilityai/sd-vae-ft-mse"
VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]
DEFAULT_VERSION = "1.6"


@dataclass(frozen=True)
class ModelVersion:
    """What distinguishes the official releases: the U-Net config they pair with and the crop size."""

    name: str
    unet_config: str  # bundled config, relative to the package's configs/
    resolution: int


VERSIONS = {
    "1.5": ModelVersion("1.5", "unet/stage2.yaml", 256),
    "1.6": ModelVersion("1.6", "unet/stage2_512.yaml", 512),
}


class MissingCheckpointError(LatentSyncError, FileNotFoundError):
    """A weight file the run needs is not on disk."""


class DownloadError(LatentSyncError, RuntimeError):
    """Fetching the official files failed (network, authentication, disk)."""


def get_version(version: str) -> ModelVersion:
    try:
        return VERSIONS[str(version)]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown LatentSync version {version!r}; choose one of {sorted(VERSIONS)}"
        ) from None


def checkpoints_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("LATENTSYNC_CHECKPOINTS") or "checkpoints")


@dataclass(frozen=True)
class CheckpointPaths:
    """Paths of one version's files; they may not exist yet (see `require`)."""

    version: str
    root: Path

    @property
    def folder(self) -> Path:
        return self.root / f"v{self.version}"

    @property
    def unet(self) -> Path:
        return self.folder / "latentsync_unet.pt"

    @property
    def whisper(self) -> Path:
        return self.folder / "whisper" / "tiny.pt"

    @property
    def syncnet(self) -> Path:
        return self.folder / "stable_syncnet.pt"

    @property
    def auxiliary(self) -> Path:
        return self.folder / "auxiliary"

    @property
    def vae(self) -> Path:
        return self.root / "sd-vae-ft-mse"

    def require(self, path: Path, what: str, training: bool = False) -> Path:
        """Return `path` if it exists, else raise an error that names it and the command that fetches it."""
        if path.exists():
            return path
        command = f"latentsync download --version {self.version} --dir {self.root}"
        if training:
            command += " --with-training"
        raise MissingCheckpointError(f"{what} not found at {path}; fetch it with `{command}`")


def checkpoint_paths(version: str = DEFAULT_VERSION, root: str | Path | None = None) -> CheckpointPaths:
    return CheckpointPaths(get_version(version).name, checkpoints_root(root))


INFERENCE_PARTS = ("unet", "whisper", "vae")


def download(
    version: str = DEFAULT_VERSION,
    root: str | Path | None = None,
    with_training: bool = False,
    token: str | None = None,
    parts: tuple[str, ...] = INFERENCE_PARTS,
) -> CheckpointPaths:
    """Fetch the official files of `version` (and the shared VAE) into `root`; files already there are kept.

    `parts` limits the fetch to some of "unet", "whisper" and "vae". huggingface_hub resumes interrupted
    transfers and shows a progress bar per file.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    paths = checkpoint_paths(version, root)
    repo = HUB_REPOS[paths.version]
    wanted = {"unet": [(repo, "latentsync_unet.pt", paths.folder)], "whisper": [(repo, "whisper/tiny.pt", paths.folder)],
              "vae": [(VAE_REPO, name, paths.vae) for name in VAE_FILES]}  # fmt: skip
    files = [file for part in parts for file in wanted[part]]
    if with_training:
        files.append((repo, "stable_syncnet.pt", paths.folder))
    try:
        for repo_id, filename, folder in files:
            hf_hub_download(repo_id, filename, local_dir=folder, token=token)
        if with_training:
            snapshot_download(repo, allow_patterns=["auxiliary/*"], local_dir=paths.folder, token=token)
    except Exception as exc:  # network, authentication and disk errors all come through here
        raise DownloadError(
            f"download from the Hugging Face hub failed ({type(exc).__name__}: {exc}); "
            "check the connection (or HF_ENDPOINT / HF_TOKEN) and run the command again: finished files are kept"
        ) from exc
    return paths
