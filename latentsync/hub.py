"""Where the official weights live on disk, and the `latentsync download` command that puts them there.

Layout under the checkpoints folder (default `./checkpoints`, or $LATENTSYNC_CHECKPOINTS):

    v1.6/latentsync_unet.pt      v1.6/whisper/tiny.pt      v1.6/stable_syncnet.pt (--with-training)
    v1.5/...                     sd-vae-ft-mse/ (diffusers folder, shared by both versions)
    v1.6/auxiliary/ (--with-training: the official repository's auxiliary models)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
        command = f"latentsync download --model-version {self.version} --dir {self.root}"
        if training:
            command += " --with-training"
        raise MissingCheckpointError(f"{what} not found at {path}; fetch it with `{command}`")


def checkpoint_paths(version: str = DEFAULT_VERSION, root: str | Path | None = None) -> CheckpointPaths:
    return CheckpointPaths(get_version(version).name, checkpoints_root(root))


INFERENCE_PARTS = ("unet", "whisper", "vae")
# Seconds allowed for opening a connection to the hub before a download is given up (instead of huggingface_hub's
# own retries, which take most of a minute to fail offline).
CONNECT_TIMEOUT = 5.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def check_hub_reachable(files: str) -> None:
    """Fail at once, naming `files` and the way out, when HF_HUB_OFFLINE is set or the hub's host does not answer.

    Behind a proxy the proxy decides, so the check is left to huggingface_hub.
    """
    from huggingface_hub import constants

    by_hand = f"or put {files} there by hand"
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise DownloadError(f"HF_HUB_OFFLINE is set, so {files} cannot be fetched: unset it, {by_hand}")
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return
    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise DownloadError(
            f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({error}) to fetch {files}: check the "
            f"connection (or HF_ENDPOINT for a mirror), {by_hand}, or run offline with the tiny test models "
            "(scripts/make_tiny_models.py)"
        ) from None


def remove_locks(folders: Iterable[Path]) -> None:
    """Delete the `.lock` files huggingface_hub leaves under `<folder>/.cache/huggingface`, and folders left empty."""
    for folder in folders:
        cache = folder / ".cache" / "huggingface"
        for lock in cache.rglob("*.lock"):
            lock.unlink(missing_ok=True)
        for directory in sorted((d for d in cache.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            if not any(directory.iterdir()):
                directory.rmdir()
        for directory in (cache, cache.parent):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


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
    wanted = {
        "unet": [(repo, "latentsync_unet.pt", paths.folder)],
        "whisper": [(repo, "whisper/tiny.pt", paths.folder)],
        "vae": [(VAE_REPO, name, paths.vae) for name in VAE_FILES],
    }
    files = [file for part in parts for file in wanted[part]]
    if with_training:
        files.append((repo, "stable_syncnet.pt", paths.folder))
    check_hub_reachable(f"the LatentSync {paths.version} weights ({', '.join(parts)}) into {paths.root}")
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
    finally:
        remove_locks({paths.folder, paths.vae})
    return paths
