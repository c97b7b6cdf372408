"""How much of the work around the networks hides behind a GPU's diffusion time.

While a chunk is diffused, a second thread decodes and crops the next one (`LipsyncPipeline._synthesize`), and the
writer's thread encodes. No GPU can be had here, so the diffusion is stood in for by a wait of `--gpu-ms` per frame
that holds no lock (as waiting on CUDA does) and returns the faces unchanged; the models are tiny and never run. Over
demo1 at 1080p (240 frames with its own audio, `cut_off`), the lip-sync stage's wall time is compared with the wait
alone and with the CPU-side work alone (a wait of 0): without overlap the stage would take their sum, fully
overlapped about the larger of the two.

Run: python benchmarks/overlap.py [--gpu-ms 40 80 160]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from latentsync.pipelines import lipsync
from latentsync.testing import write_tiny_models
from latentsync.testing.assets import ASSETS


class WaitingDenoiser:
    """Stands in for ChunkDenoiser: sleeps as long as the GPU would work on the chunk, returns the faces."""

    gpu_ms_per_frame = 0.0

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def initial_noise(self, resolution: int, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros(1)

    def __call__(self, pixel_values: torch.Tensor, *args: object) -> torch.Tensor:
        time.sleep(self.gpu_ms_per_frame * len(pixel_values) / 1000)
        return pixel_values


def lip_sync_stage(pipeline: lipsync.LipsyncPipeline, gpu_ms: float) -> tuple[float, int]:
    """(wall seconds of the lip-sync stage, frames) for one run with the stand-in waiting `gpu_ms` a frame."""
    WaitingDenoiser.gpu_ms_per_frame = gpu_ms
    with tempfile.TemporaryDirectory() as tmp:
        result = pipeline(
            ASSETS / "demo1_video.mp4", ASSETS / "demo1_audio.wav", Path(tmp) / "out.mp4", steps=1, progress=False
        )
    return result.seconds["lip sync"], result.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-ms", type=float, nargs="+", default=[40, 80, 160], help="stand-in GPU ms per frame")
    args = parser.parse_args()
    lipsync.ChunkDenoiser = WaitingDenoiser  # type: ignore[misc,assignment]
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = write_tiny_models(tmp).load_pipeline()
    cpu, frames = lip_sync_stage(pipeline, 0)
    print(f"{frames} frames of demo1 at 1080p; CPU-side work alone: {1000 * cpu / frames:.0f} ms a frame")
    print("GPU ms/frame   stage ms/frame   sum (no overlap)   hidden")
    for gpu_ms in args.gpu_ms:
        wall, _ = lip_sync_stage(pipeline, gpu_ms)
        total = 1000 * wall / frames
        serial = gpu_ms + 1000 * cpu / frames
        hidden = (serial - total) / min(gpu_ms, 1000 * cpu / frames)
        print(f"{gpu_ms:12.0f} {total:16.0f} {serial:18.0f} {100 * hidden:7.0f}%")


if __name__ == "__main__":
    main()
