"""StableSyncNet accuracy as LatentSync's `eval/eval_syncnet_acc.py` measures it.

Pairs are drawn as the official SyncNet dataset draws them, from a seeded generator: a random clip of at least 32
frames, a start frame in [0, n - 16], and with probability 1/2 its own 16 frames (in sync, label 1) or 16 frames from
another start (label 0); the audio is the 52-step mel window (80 per second) at the first start. The mel, the windows
and the draws are the training dataset's own (`audio.syncnet_mel`, `data.clips.syncnet_windows`). Frames are 256 px
aligned faces in [-1, 1], stacked (16 x RGB) and cut to their lower half for the pixel configs; the latent config
scores their sampled VAE latents (16 x 4 channels at 32 px) instead, as training does. A pair counts as predicted in
sync when the cosine of the two embeddings exceeds 0.5.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

from latentsync.errors import LatentSyncError

THRESHOLD = 0.5


def video_frames(path: Path, size: int) -> np.ndarray:
    """All 25 fps frames of an aligned face clip, resized to `size` if needed (bicubic, antialiased as torchvision)."""
    from latentsync.media import VideoReader

    frames = np.stack(list(VideoReader(path, fps=25)))
    if frames.shape[1:3] != (size, size):
        import torch.nn.functional as F

        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).round().clamp(0, 255)
        frames = x.byte().permute(0, 2, 3, 1).numpy()
    return frames


def sample_pairs(
    videos: list[Path], count: int, seed: int, num_frames: int = 16, size: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """`count` (frames (16, size, size, 3) uint8, mel (1, 80, 52), label) samples, reproducible from `seed`."""
    from latentsync.audio import load_audio
    from latentsync.audio.syncnet_mel import mel_window, melspectrogram
    from latentsync.data.clips import syncnet_windows

    rng = random.Random(seed)
    cache: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    made = attempts = 0
    while made < count:
        attempts += 1
        if attempts > 20 * count + 100:
            raise LatentSyncError(f"no usable clip (at least {2 * num_frames} frames with audio) among {len(videos)}")
        path = videos[rng.randint(0, len(videos) - 1)]
        if path not in cache:
            cache[path] = (video_frames(path, size), melspectrogram(load_audio(path)))
        frames, mel = cache[path]
        if len(frames) < 2 * num_frames:
            continue
        start, wrong = syncnet_windows(rng, len(frames), num_frames)
        try:
            audio = mel_window(mel, start, num_frames).numpy()
        except ValueError:  # the window runs past the audio's end: drawn again, as the dataset does
            continue
        label = 1.0 if rng.choice([True, False]) else 0.0
        chosen = start if label else wrong
        made += 1
        yield frames[chosen : chosen + num_frames], audio, label


@torch.no_grad()
def accuracy(
    model,
    pairs,
    lower_half: bool = True,
    batch: int = 16,
    dtype: torch.dtype = torch.float32,
    latent_space: bool = False,
    vae: AutoencoderKL | None = None,
) -> dict:
    """Accuracy of `model` (a StableSyncNet) on the pairs, with the counts it comes from.

    The frames reach the model as in training (`diffusion.syncnet_input.syncnet_stack`): stacked pixels, or for a
    latent-space config their sampled VAE latents (then `vae` is needed).
    """
    from latentsync.diffusion.syncnet_input import syncnet_stack

    device = next(model.parameters()).device
    correct = total = 0
    buffer: list = []

    def flush() -> None:
        nonlocal correct, total
        frames = torch.from_numpy(np.stack([b[0] for b in buffer])).to(device)  # (b, f, H, W, 3)
        x = frames.permute(0, 1, 4, 2, 3).to(dtype) / 127.5 - 1
        x = syncnet_stack(x, latent_space, lower_half, vae).to(dtype)
        mel = torch.from_numpy(np.stack([b[1] for b in buffer])).to(device, dtype)
        labels = torch.tensor([b[2] for b in buffer], device=device)
        vision, audio = model(x, mel)
        predicted = (torch.nn.functional.cosine_similarity(vision.float(), audio.float()) > THRESHOLD).float()
        correct += int((predicted == labels).sum())
        total += len(buffer)
        buffer.clear()

    for pair in pairs:
        buffer.append(pair)
        if len(buffer) == batch:
            flush()
    if buffer:
        flush()
    return {"accuracy": correct / total if total else None, "correct": correct, "pairs": total}
