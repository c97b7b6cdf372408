"""The end-to-end lip-sync pipeline: a video and a speech track in, the lip-synced video out.

Two passes over the video keep memory flat whatever its length:

1. analysis: decode every frame once, find the face, fix its alignment matrix (a few bytes per frame);
2. synthesis: walk the output timeline of the sync plan in chunks of `batch_frames`, fetch those source frames,
   crop, diffuse, paste back and encode them at once.

Frames without a face are written unchanged; a video with no face at all fails before any diffusion runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from tqdm.auto import tqdm

from latentsync.audio import AudioEncoder, AudioFeatureStream, WindowMode, load_audio
from latentsync.config import ConfigError, bundled_config, load_config, mask_variant, to_dict
from latentsync.config.defaults import INFERENCE
from latentsync.constants import MODEL_SAMPLE_RATE, OUTPUT_SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from latentsync.diffusion import load_scheduler, seeded_generator
from latentsync.errors import InvalidArgumentError
from latentsync.faces import create_detector
from latentsync.faces.align import crop_face
from latentsync.faces.mask import diffusion_inputs, fixed_mask
from latentsync.faces.paste import paste_back
from latentsync.faces.track import REDETECT_EVERY, FaceTrack, track_faces
from latentsync.hub import DEFAULT_VERSION, checkpoint_paths, get_version
from latentsync.media import SYNC_MODES, FrameSource, MediaError, SyncPlan, VideoReader, VideoWriter, plan_sync, probe
from latentsync.media.sync import SyncMode
from latentsync.models import UNet3DConditionModel, load_vae
from latentsync.runtime import StageTimer, explain_gpu_memory, pick_device, pick_dtype

from .diffusion import ChunkDenoiser, DiffusionSettings

logger = logging.getLogger(__name__)

FACE_SMOOTHING = ("steady", "official")
# With --low-vram the VAE decodes 4 frames at a time: at 512 px that puts the peak at the U-Net step (4.3 instead
# of 5.6 GiB projected by benchmarks/vram.py) for a little speed, with the same pixels up to float round-off.
LOW_VRAM_VAE_BATCH = 4


@dataclass
class LipsyncOptions:
    """Per-call settings; the defaults are the official inference settings."""

    steps: int = INFERENCE.steps
    guidance_scale: float = INFERENCE.guidance_scale
    seed: int = INFERENCE.seed
    sync_mode: str = INFERENCE.sync_mode
    deepcache: bool = False
    batch_frames: int = INFERENCE.batch_frames
    face_index: int | None = None
    face_at: tuple[float, float] | None = None
    audio_windows: str = "official"
    face_tracking: bool = True  # follow the face between full-frame detections (every REDETECT_EVERY frames)
    face_smoothing: str = "steady"  # "steady" (faces.smooth) or "official" (the official per-frame alignment)
    # Picks the face to dub from (frames, 16 kHz speech, detector): a point in it, or None for the default choice.
    # `latentsync infer --face-index speaker` passes eval.speaker.choose_speaker (the active speaker).
    face_chooser: Callable[[Iterable[np.ndarray], np.ndarray, object], tuple[float, float] | None] | None = None
    progress: bool = True
    on_progress: Callable[[int, int], None] | None = None  # called with (frames written, total) after each chunk

    def check(self) -> None:
        if self.sync_mode not in SYNC_MODES:
            raise InvalidArgumentError(f"unknown sync mode {self.sync_mode!r}; choose one of {', '.join(SYNC_MODES)}")
        if self.steps < 1 or self.batch_frames < 1:
            raise InvalidArgumentError("steps and batch_frames must be at least 1")
        if self.face_smoothing not in FACE_SMOOTHING:
            raise InvalidArgumentError(
                f"face_smoothing must be one of {', '.join(FACE_SMOOTHING)}, not {self.face_smoothing!r}"
            )
        if self.audio_windows not in ("official", "overlap"):
            raise InvalidArgumentError(f"audio_windows must be 'official' or 'overlap', not {self.audio_windows!r}")


@dataclass
class LipsyncResult:
    """What a run produced, with the counts and timings shown in the summary."""

    output: Path | None
    frames: int
    frames_with_face: int
    source_frames: int
    source_frames_with_face: int
    sync_mode: str
    seconds: dict[str, float] = field(default_factory=dict)
    video: np.ndarray | None = None  # (n, H, W, 3) uint8 when no output path was given
    audio: np.ndarray | None = None  # int16 mono at OUTPUT_SAMPLE_RATE, likewise
    gpu_memory_peak: int | None = None  # bytes torch allocated on the GPU at most during the run (None off CUDA)

    @property
    def frames_without_face(self) -> int:
        return self.frames - self.frames_with_face

    def summary(self) -> str:
        stages = ", ".join(f"{name} {secs:.1f}s" for name, secs in self.seconds.items())
        where = f" -> {self.output}" if self.output else ""
        memory = f"; peak GPU memory {self.gpu_memory_peak / 2**30:.2f} GiB" if self.gpu_memory_peak is not None else ""
        return (
            f"{self.frames} frames at {VIDEO_FPS} fps ({self.sync_mode}){where}; faces found in "
            f"{self.source_frames_with_face}/{self.source_frames} source frames, "
            f"{self.frames_without_face} output frames passed through unchanged; {stages}{memory}"
        )


class ArrayFrames:
    """In-memory frames behind the same `get(indices)` interface as FrameSource."""

    def __init__(self, frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise MediaError(f"video array must be non-empty uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}")
        self.frames = frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    def close(self) -> None:
        """Nothing to release (FrameSource closes its file here)."""

    def get(self, indices: Iterable[int]) -> list[np.ndarray]:
        return [self.frames[i] for i in indices]


class LipsyncPipeline:
    """Holds the models; each call lip-syncs one video. Build it with `from_pretrained`."""

    def __init__(
        self,
        unet: UNet3DConditionModel,
        vae: AutoencoderKL,
        audio_encoder: AudioEncoder,
        resolution: int,
        face_detector: str = "dlib",
        scheduler_config: str | Path | None = None,
        low_vram: bool = False,
        mask: str = "mask",
    ) -> None:
        """`mask`: the mouth mask variant (`faces.mask.MASK_SHAPES`), from the config's `mask_image_path`."""
        self.unet, self.vae, self.audio_encoder = unet, vae, audio_encoder
        self.mask = mask
        if resolution % 64:
            raise ConfigError(
                f"unsupported resolution {resolution}: face crops must be a multiple of 64 px "
                "(the official models use 256 for 1.5 and 512 for 1.6)"
            )
        self.resolution = resolution
        self.detector = create_detector(face_detector, device=str(unet.device))
        self.scheduler_config = scheduler_config
        self.low_vram = low_vram
        if audio_encoder.width != unet.config.cross_attention_dim and unet.config.add_audio_layer:
            raise ConfigError(
                f"the whisper checkpoint gives {audio_encoder.width}-wide features but the U-Net config expects "
                f"cross_attention_dim {unet.config.cross_attention_dim} (tiny.pt: 384, small.pt: 768)"
            )

    @classmethod
    def from_pretrained(
        cls,
        version: str = DEFAULT_VERSION,
        checkpoints: str | Path | None = None,
        unet_config: str | Path | None = None,
        unet_checkpoint: str | Path | None = None,
        whisper_checkpoint: str | Path | None = None,
        vae: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        face_detector: str = "dlib",
        compile: bool = False,
        low_vram: bool = False,
    ) -> LipsyncPipeline:
        """Load a release (`version` picks config and crop size) or any model given by explicit paths.

        Paths left out come from the `latentsync download` layout under `checkpoints`; a missing file is an error
        naming it and the command that fetches it.
        """
        release = get_version(version)
        paths = checkpoint_paths(release.name, checkpoints)
        config = load_config(unet_config or bundled_config(release.unet_config))
        device = pick_device(device)
        dtype = pick_dtype(device, dtype)

        unet_path = Path(unet_checkpoint) if unet_checkpoint else paths.require(paths.unet, "U-Net checkpoint")
        whisper_path = Path(whisper_checkpoint) if whisper_checkpoint else paths.require(paths.whisper, "Whisper")
        vae_source = vae if vae is not None else paths.require(paths.vae, "VAE folder")

        with explain_gpu_memory(device, low_vram):
            unet = UNet3DConditionModel.from_pretrained(to_dict(config.model), unet_path, device=device, dtype=dtype)
            vae_model = load_vae(vae_source, device="cpu" if low_vram else device, dtype=dtype)
            # Whisper encodes one 30 s window at a time during synthesis; with low_vram it does so on the CPU.
            encoder = AudioEncoder(whisper_path, device="cpu" if low_vram else device)
        if compile:
            unet = torch.compile(unet)  # type: ignore[assignment]
        return cls(
            unet,
            vae_model,
            encoder,
            int(config.data.resolution),
            face_detector,
            low_vram=low_vram,
            mask=mask_variant(config.data.mask_image_path),
        )

    # ----------------------------------------------------------------------------------------------------------
    def __call__(
        self,
        video: str | Path | np.ndarray,
        audio: str | Path | np.ndarray,
        output: str | Path | None = None,
        *,
        steps: int = INFERENCE.steps,
        guidance_scale: float = INFERENCE.guidance_scale,
        seed: int = INFERENCE.seed,
        sync_mode: str = INFERENCE.sync_mode,
        deepcache: bool = False,
        batch_frames: int = INFERENCE.batch_frames,
        face_index: int | None = None,
        face_at: tuple[float, float] | None = None,
        audio_windows: str = "official",
        face_tracking: bool = True,
        face_smoothing: str = "steady",
        face_chooser: Callable[[Iterable[np.ndarray], np.ndarray, object], tuple[float, float] | None] | None = None,
        progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> LipsyncResult:
        """Lip-sync `video` (a path, or 25 fps uint8 frames (n, H, W, 3)) to `audio` (a path, or 16 kHz mono).

        With `output`, the video is written there (H.264 + AAC, atomically); without, frames and audio are returned
        in the result. The keywords are the fields of LipsyncOptions (same defaults: the official inference
        settings); `sync_mode` is one of `media.SYNC_MODES` (see the README), `audio_windows` "official" or
        "overlap", `face_smoothing` "steady" or "official", `face_chooser(frames, speech, detector)` picks the face
        to dub (a point on it, or None), `on_progress(frames written, total)` is called after each chunk.
        """
        opts = LipsyncOptions(
            steps=steps,
            guidance_scale=guidance_scale,
            seed=seed,
            sync_mode=sync_mode,
            deepcache=deepcache,
            batch_frames=batch_frames,
            face_index=face_index,
            face_at=face_at,
            audio_windows=audio_windows,
            face_tracking=face_tracking,
            face_smoothing=face_smoothing,
            face_chooser=face_chooser,
            progress=progress,
            on_progress=on_progress,
        )
        opts.check()
        if output is not None and not Path(output).parent.is_dir():
            raise MediaError(f"{output}: the output folder does not exist")  # before minutes of face finding
        timer = StageTimer()
        on_gpu = self.unet.device.type == "cuda"
        if on_gpu:  # the summary reports the run's peak, which is what tells whether a smaller card would do
            torch.cuda.reset_peak_memory_stats(self.unet.device)

        with timer("audio"):
            speech, out_audio = self._read_audio(audio)
            n_audio = len(speech) / SAMPLES_PER_FRAME
        in_order, frames, frame_size = self._open_video(video)

        with timer("faces"):
            face_at = opts.face_at
            if opts.face_chooser is not None:
                face_at = opts.face_chooser(in_order, speech, self.detector)
            # Modes that never play past the audio's end need no frames beyond it.
            limit = math.ceil(n_audio) if opts.sync_mode in ("cut_off", "loop", "bounce") else None
            track = track_faces(
                in_order,
                self.detector,
                self.resolution,
                opts.face_index,
                face_at,
                limit,
                opts.progress,
                redetect_every=REDETECT_EVERY if opts.face_tracking else None,
                steady=opts.face_smoothing == "steady",
            )
        # both modes were checked against their Literal's values in LipsyncOptions.__post_init__
        plan = plan_sync(
            cast(SyncMode, opts.sync_mode), len(track), n_audio, sample_rate=OUTPUT_SAMPLE_RATE, fps=VIDEO_FPS
        )

        with timer("audio"):
            # Extra frames of a longer video are lip-synced to real silence, not to the last spoken sound.
            padded = plan.n_frames * SAMPLES_PER_FRAME - len(speech)
            if padded > 0:
                speech = np.pad(speech, (0, padded))
            # Windows are encoded as the synthesis reaches them (so the encoder stays on its device); only the
            # log-mel is kept, not the waveform.
            features = self.audio_encoder.stream(speech, windows=cast(WindowMode, opts.audio_windows))
            del speech

        out_audio = plan.fit_audio(out_audio)  # rebinding frees the untrimmed copy
        with timer("lip sync"), closing(frames), explain_gpu_memory(self.unet.device, self.low_vram):
            result = self._synthesize(frames, frame_size, track, plan, features, out_audio, output, opts)
        result.seconds = timer.seconds
        if on_gpu:
            result.gpu_memory_peak = torch.cuda.max_memory_allocated(self.unet.device)
        return result

    def _prepare_chunk(
        self, frames: FrameSource | ArrayFrames, track: FaceTrack, indices: np.ndarray, mask: np.ndarray
    ) -> _Chunk:
        """Decode one chunk's frames and cut its faces out (no model is involved: runs beside the diffusion)."""
        chunk = frames.get(indices)
        picked = np.flatnonzero(track.found[indices])
        faces = [crop_face(chunk[j], track.matrices[indices[j]], self.resolution) for j in picked]
        pixel_values = torch.stack([diffusion_inputs(face, mask).pixel_values for face in faces]) if faces else None
        return _Chunk(indices, chunk, picked, pixel_values)

    def _read_audio(self, audio: str | Path | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(16 kHz float speech for the models, int16 speech at the output rate for the file)."""
        if isinstance(audio, np.ndarray):
            speech = np.asarray(audio, dtype=np.float32)
            if speech.ndim != 1 or len(speech) == 0:
                raise InvalidArgumentError(f"audio array must be non-empty 16 kHz mono, got shape {speech.shape}")
            times = (
                np.arange(round(len(speech) * OUTPUT_SAMPLE_RATE / MODEL_SAMPLE_RATE))
                * MODEL_SAMPLE_RATE
                / OUTPUT_SAMPLE_RATE
            )
            out = np.interp(times, np.arange(len(speech)), speech)
            return speech, (np.clip(out, -1, 1) * 32767).astype(np.int16)
        return load_audio(audio, MODEL_SAMPLE_RATE), load_audio(audio, OUTPUT_SAMPLE_RATE, as_int16=True)

    def _open_video(
        self, video: str | Path | np.ndarray
    ) -> tuple[Iterable[np.ndarray], FrameSource | ArrayFrames, tuple[int, int]]:
        """(frames in display order for the analysis pass, random access for synthesis, upright (width, height))."""
        if isinstance(video, np.ndarray):
            frames = ArrayFrames(video)
            return frames, frames, (video.shape[2], video.shape[1])
        info = probe(video)
        logger.debug("video %s: %dx%d, %.3f fps, %.1f s", video, info.width, info.height, info.fps, info.duration)
        return VideoReader(video, fps=VIDEO_FPS), FrameSource(video, fps=VIDEO_FPS), (info.width, info.height)

    @torch.no_grad()
    def _synthesize(
        self,
        frames: FrameSource | ArrayFrames,
        frame_size: tuple[int, int],
        track: FaceTrack,
        plan: SyncPlan,
        features: AudioFeatureStream,
        out_audio: np.ndarray,
        output: str | Path | None,
        opts: LipsyncOptions,
    ) -> LipsyncResult:
        denoiser = ChunkDenoiser(
            self.unet,
            self.vae,
            load_scheduler(self.scheduler_config),
            DiffusionSettings(
                opts.steps,
                opts.guidance_scale,
                deepcache_interval=3 if opts.deepcache else 0,
                vae_batch=LOW_VRAM_VAE_BATCH if self.low_vram else DiffusionSettings.vae_batch,
            ),
            offload_vae=self.low_vram,
        )
        generator = seeded_generator(opts.seed, self.unet.device)
        noise = denoiser.initial_noise(self.resolution, generator)
        mask = fixed_mask(self.resolution, self.mask)
        audio_layer = self.unet.config.add_audio_layer
        kept: list[np.ndarray] = []
        with_face = 0
        writer = (
            VideoWriter(output, *frame_size, fps=VIDEO_FPS, audio=out_audio, sample_rate=OUTPUT_SAMPLE_RATE)
            if output is not None
            else None
        )
        bar = tqdm(total=plan.n_frames, desc="Lip-syncing", unit="frame", disable=not opts.progress)
        starts = range(0, plan.n_frames, opts.batch_frames)

        def prepare(start: int) -> _Chunk:
            return self._prepare_chunk(frames, track, plan.frame_indices[start : start + opts.batch_frames], mask)

        # One thread decodes and crops the next chunk while this one is diffused (the GPU waits on no decoding):
        # two chunks of frames are alive at a time.
        with writer or _nothing(), bar, ThreadPoolExecutor(1, thread_name_prefix="next chunk") as ahead:
            upcoming = ahead.submit(prepare, starts[0])
            for number, start in enumerate(starts):
                chunk = upcoming.result()
                if number + 1 < len(starts):
                    upcoming = ahead.submit(prepare, starts[number + 1])
                if chunk.pixel_values is not None:
                    embeds = None
                    if audio_layer:
                        embeds = features.frame_chunks(fps=VIDEO_FPS, start=start, count=len(chunk.indices))[
                            chunk.picked
                        ]
                    synced = denoiser(chunk.pixel_values, torch.from_numpy(mask)[None, None], embeds, noise, generator)
                    synced_rgb = ((synced.float().cpu() + 1) * 127.5).permute(0, 2, 3, 1).numpy()
                    for face, j in zip(synced_rgb, chunk.picked):
                        chunk.frames[j] = paste_back(chunk.frames[j], face, track.matrices[chunk.indices[j]])
                    with_face += len(chunk.picked)
                if writer is None:
                    kept.extend(chunk.frames)
                else:
                    for frame in chunk.frames:
                        writer.write(frame)
                bar.update(len(chunk.frames))
                if opts.on_progress is not None:
                    opts.on_progress(start + len(chunk.frames), plan.n_frames)
        return LipsyncResult(
            output=Path(output) if output is not None else None,
            frames=plan.n_frames,
            frames_with_face=with_face,
            source_frames=len(track),
            source_frames_with_face=track.faces_found,
            sync_mode=plan.mode,
            video=np.stack(kept) if writer is None else None,
            audio=out_audio if writer is None else None,
        )


class _Chunk(NamedTuple):
    """One chunk's frames, ready for diffusion."""

    indices: np.ndarray  # source frame of each output frame
    frames: list[np.ndarray]
    picked: np.ndarray  # positions in the chunk of the frames with a face
    pixel_values: torch.Tensor | None  # their aligned faces as U-Net inputs, None when no frame has a face


@contextmanager
def _nothing() -> Iterator[None]:
    yield
