"""U-Net validation: render the configured clip through our own inference pipeline with the weights in training.

As the official trainer, at each checkpoint (or every `train.validation_steps`), rank 0 lip-syncs
`data.val_video_path` to `data.val_audio_path` with `run.inference_steps` and `run.guidance_scale` and keeps the video
as `val_videos/val_video_<step>.mp4`. A failure (no face in the clip, ...) is logged and training goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def render_validation(models: Any, cfg: DictConfig, step: int, output_dir: Path) -> dict[str, float] | None:
    """Write the validation video of `step`; returns the seconds it took (logged), None when it failed."""
    from latentsync.pipelines.lipsync import LipsyncPipeline

    unet = models.unet
    was_training = unet.training
    out = output_dir / "val_videos" / f"val_video_{step}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        unet.eval()
        pipeline = LipsyncPipeline(unet, models.vae, models.whisper, int(cfg.data.resolution))
        with torch.no_grad():
            result = pipeline(
                cfg.data.val_video_path, cfg.data.val_audio_path, out, steps=int(cfg.run.inference_steps),
                guidance_scale=float(cfg.run.guidance_scale), seed=int(cfg.run.seed), progress=False,
            )  # fmt: skip
        log.info("validation video of step %d: %s", step, out)
        return {"render_seconds": float(sum(result.seconds.values()))} if result.seconds else {}
    except Exception as exc:  # noqa: BLE001 - a failed render never stops training, as in the official trainer
        log.warning("validation at step %d failed: %s", step, exc)
        return None
    finally:
        unet.train(was_training)
