"""U-Net validation: render the configured clip through our own inference pipeline with the weights in training,
and score the result's lip sync with the frozen SyncNet of the sync loss.

As the official trainer, at each checkpoint (or every `train.validation_steps`), rank 0 lip-syncs
`data.val_video_path` to `data.val_audio_path` with `run.inference_steps` and `run.guidance_scale` and keeps the video
as `val_videos/val_video_<step>.mp4`. Two scores of the result are logged (and charted with the losses):
- `sync_conf` / `sync_dist` / `sync_offset`: the original SyncNet's confidence (LSE-C), distance (LSE-D) and offset,
  as the official trainer charts it, through the evaluation's scorer (`weights.syncnet_v2`, face tracks from S3FD
  `weights.s3fd`, or the project's own finder when that file is absent). Unlike the official trainer, a missing
  `syncnet_v2.model` only skips this score, with a warning;
- `sync_cosine`: the frozen StableSyncNet's mean cosine over 16-frame windows of the result's faces, aligned again
  as training crops are (the closer to 1, the more in sync).
A failure (no face in the clip, ...) is logged and training goes on.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
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
            values.update(sync_confidence(out, cfg, pipeline.detector, next(unet.parameters()).device))
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


@lru_cache(maxsize=2)
def _lse_models(syncnet_v2: str, s3fd: str, device: str) -> tuple[Any, Any]:
    """The original SyncNet and (when its file exists) S3FD, loaded once for all validations of a run."""
    from latentsync.eval.finders import s3fd_finder
    from latentsync.eval.sync import SyncScorer

    return SyncScorer.load(syncnet_v2, device), s3fd_finder(s3fd, device) if Path(s3fd).is_file() else None


def sync_confidence(video: Path, cfg: DictConfig, detector: Any, device: torch.device) -> dict[str, float]:
    """LSE-C/D and offset of `video` as the evaluation scores it; {} (warned once) without `syncnet_v2.model`."""
    from latentsync.eval.finders import landmark_finder
    from latentsync.eval.lse import score_video

    weights = Path(cfg.weights.syncnet_v2)
    if not weights.is_file():
        _warn_missing(weights)
        return {}
    scorer, finder = _lse_models(str(weights), str(cfg.weights.s3fd), str(device))
    score = score_video(video, scorer, finder or landmark_finder(detector))
    if not score.ok:
        log.warning("validation: no sync confidence for %s: %s", video, score.error)
        return {}
    return {"sync_conf": score.conf, "sync_dist": score.min_dist, "sync_offset": float(score.offset)}


@cache
def _warn_missing(weights: Path) -> None:
    """Once per run (per path): every validation would otherwise repeat it."""
    log.warning(
        "validation: %s not found (weights.syncnet_v2); the sync confidence is not logged "
        "(`latentsync download --with-training` fetches it)",
        weights,
    )


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
