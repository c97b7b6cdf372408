"""Training speed on the CPU: data-loader samples per second per worker, and steps per second of a tiny U-Net.

1. `loader`: U-Net samples (two 16-frame windows decoded and resized, mask, cached Whisper window, mel window) per
   second from one worker (`num_workers=0`, the main process), at 256 and 512 px, from clips cut from demo1 at that
   size; caches warm (as after `latentsync train cache`). Printed against the per-GPU batch ByteDance trained each
   official config with (the configs ship `batch_size: 1` with the real value in a comment: stage1 24, stage1_512
   8, stage2 / stage2_efficient / stage2_512 4): the seconds one worker needs for such a batch, and the configs'
   `data.num_workers` (12) together. The loader keeps a GPU fed while that time stays under the GPU's step time.
2. `steps`: steps per second and peak RSS of `train_unet` with the tiny models (`write_tiny_models`, 64 px, stage-2
   structure, reconstruction loss), one thread. Needs the training step (`latentsync.train.objectives`).

Run: python benchmarks/train_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from latentsync.audio.decode import load_audio
from latentsync.config import bundled_config, load_config
from latentsync.data.sources import list_clips
from latentsync.data.unet_dataset import UNetDataset
from latentsync.media import VideoReader, VideoWriter
from latentsync.testing import ASSETS, write_tiny_models


def write_clips(folder: Path, resolution: int, count: int, frames: int) -> Path:
    """`count` clips of `frames` frames of demo1 (centre square, resized), with their audio: loader input only."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    pictures = list(islice(VideoReader(ASSETS / "demo1_video.mp4"), frames))
    audio = load_audio(ASSETS / "demo1_video.mp4")[: frames * 640]
    h, w = pictures[0].shape[:2]
    side = min(h, w)
    for i in range(count):
        with VideoWriter(folder / f"clip{i}.mp4", resolution, resolution, audio=audio) as writer:
            for p in pictures:
                square = p[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
                writer.write(cv2.resize(square, (resolution, resolution), interpolation=cv2.INTER_AREA))
    return folder


OFFICIAL_GPU_BATCH = {256: {"stage1": 24, "stage2": 4}, 512: {"stage1_512": 8, "stage2_512": 4}}


def loader_speed(work: Path, tiny, resolution: int, samples: int) -> float:
    clips = write_clips(work / f"clips{resolution}", resolution, 2, 64)
    cfg = load_config(
        bundled_config("unet/stage2.yaml"),
        [
            f"data.resolution={resolution}",
            f"weights.whisper={tiny.whisper_checkpoint}",
            f"data.audio_embeds_cache_dir={work / 'cache'}",
            f"data.audio_mel_cache_dir={work / 'cache'}",
        ],
    )
    dataset = UNetDataset(list_clips(data_dir=clips), cfg, seed=0)
    for i in range(len(dataset)):
        dataset[i]  # warm the caches
    start = time.perf_counter()
    for i in range(samples):
        dataset.set_epoch(1 + i // len(dataset))
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def step_speed(work: Path, tiny, steps: int) -> tuple[float, float] | None:
    try:
        import latentsync.train.objectives  # noqa: F401
    except ImportError:
        return None
    from latentsync.train.unet import train_unet

    clips = write_clips(work / "clips64", 64, 3, 64)
    cfg = load_config(
        tiny.unet_config,
        [
            f"ckpt.resume_ckpt_path={tiny.unet_checkpoint}",
            f"weights.vae={tiny.vae}",
            f"weights.whisper={tiny.whisper_checkpoint}",
            f"data.train_data_dir={clips}",
            "data.train_fileslist=''",
            "data.num_workers=0",
            "data.val_video_path=''",
            "run.pixel_space_supervise=false",
            "run.use_syncnet=false",
            f"run.max_train_steps={steps + 1}",
            "ckpt.save_ckpt_steps=1000000",
            "run.mixed_precision_training=false",
        ],
    )
    cfg.run.max_train_steps = 1
    train_unet(cfg, work / "warm", progress=False)  # model loading and first-step costs out of the timing
    cfg.run.max_train_steps = steps
    start = time.perf_counter()
    train_unet(cfg, work / "run", progress=False)
    seconds = time.perf_counter() - start
    return steps / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps (well under a minute)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples, steps = (4, 3) if args.quick else (24, 20)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        tiny = write_tiny_models(work / "tiny")
        for resolution, batches in OFFICIAL_GPU_BATCH.items():
            rate = loader_speed(work, tiny, resolution, samples)
            print(f"loader {resolution} px: {rate:.1f} samples/s per worker")
            for name, batch in batches.items():
                workers = int(load_config(bundled_config(f"unet/{name}.yaml")).data.num_workers)
                print(
                    f"  {name} (official batch {batch} per GPU): {batch / rate:.2f} s per batch from one worker, "
                    f"{batch / rate / workers:.2f} s from the config's {workers} workers"
                )
        measured = step_speed(work, tiny, steps)
        if measured is None:
            print("steps: skipped (latentsync.train.objectives, the training step, is not installed)")
        else:
            rate, rss = measured
            print(f"tiny U-Net (64 px, reconstruction, 1 thread): {rate:.2f} steps/s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
