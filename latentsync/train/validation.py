"""U-Net validation: render the configured clip through our own inference pipeline with the weights in training,
and score the result's lip sync with the frozen SyncNet of the sync loss.

As the official trainer, at each checkpoint (or every `train.validation_steps`), rank 0 lip-syncs
`data.val_video_path` to `data.val_audio_path` with `run.inference_steps` and `run.guidance_scale` and keeps the video
as `val_videos/val_video_<step>.mp4`. The official trainer then scores it with the original SyncNet's confidence;
here the result's faces are aligned again, as training crops are, and the frozen StableSyncNet's mean cosine over
16-frame windows is logged (`sync_cosine`; the closer to 1, the more in sync). A failure (no face in the clip, ...)
is logged and training goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from latentsync.audio.decode import load_audio
from latentsync.audio.syncnet_mel import mel_window, melspectrogram
from latentsync.config import load_config
from latentsync.data.clips import to_model_range

log = logging.getLogger(__name__)
WINDOW = 16


def render_validation(models: Any, cfg: DictConfig, step: int, output_dir: Path) -> dict[str, float] | None:
    """Write the validation video of `step`; returns what to log (render seconds, SyncNet cosine), None on failure."""
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
                cfg.data.val_video_path,
                cfg.data.val_audio_path,
                out,
                steps=int(cfg.run.inference_steps),
                guidance_scale=float(cfg.run.guidance_scale),
                seed=int(cfg.run.seed),
                progress=False,
            )
            values = {"render_seconds": float(sum(result.seconds.values()))}
            if getattr(models, "syncnet", None) is not None:
                values["sync_cosine"] = sync_cosine(
                    out, models.syncnet, cfg.data.syncnet_config_path, pipeline.detector
                )
        log.info("validation video of step %d: %s", step, out)
        return values
    except Exception as exc:  # noqa: BLE001 - a failed validation never stops training, as in the official trainer
        log.warning("validation at step %d failed: %s", step, exc)
        return None
    finally:
        unet.train(was_training)


@torch.no_grad()
def sync_cosine(video: Path, syncnet: torch.nn.Module, syncnet_config: str, detector: Any) -> float:
    """Mean StableSyncNet cosine of a video's consecutive 16-frame windows, faces aligned as training crops are
    (a frame where the finder misses the face takes the nearest frame's alignment)."""
    from latentsync.faces import crop_face, track_faces
    from latentsync.media import VideoReader

    cfg = load_config(syncnet_config)
    resolution = int(cfg.data.resolution)
    frames = list(VideoReader(video))
    track = track_faces(frames, detector, resolution, progress=False)  # raises when no frame shows a face
    found = np.flatnonzero(track.found)
    nearest = found[np.abs(np.arange(len(frames))[:, None] - found[None]).argmin(1)]  # a frame without one
    crops = to_model_range([crop_face(f, track.matrices[i], resolution) for f, i in zip(frames, nearest)], resolution)
    mel = melspectrogram(load_audio(video))
    weight = next(syncnet.parameters())
    cosines = []
    for start in range(0, len(crops) - WINDOW + 1, WINDOW):
        try:
            audio = mel_window(mel, start)[None]
        except ValueError:
            break
        images = crops[start : start + WINDOW]
        if cfg.data.lower_half:
            images = images[..., resolution // 2 :, :]
        vision, sound = syncnet(images.flatten(0, 1)[None].to(weight), audio.to(weight))
        cosines.append(F.cosine_similarity(vision.float(), sound.float()).item())
    if not cosines:
        raise ValueError(f"{video}: shorter than one {WINDOW}-frame SyncNet window")
    return sum(cosines) / len(cosines)
