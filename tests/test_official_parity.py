"""Our pipeline against outputs of the official LatentSync code on a small real case (see tests/data/README.md).

Alignment, diffusion (with and without DeepCache) and paste-back are checked one by one on the official inputs,
then the whole `LipsyncPipeline` call from frames and audio to output frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from latentsync.audio import AudioEncoder
from latentsync.diffusion import load_scheduler, seeded_generator
from latentsync.faces.align import FaceAligner
from latentsync.faces.mask import diffusion_inputs, fixed_mask
from latentsync.faces.paste import paste_back
from latentsync.models.unet import UNet3DConditionModel
from latentsync.pipelines.diffusion import ChunkDenoiser, DiffusionSettings
from latentsync.pipelines.lipsync import LipsyncPipeline
from latentsync.testing import GOLDEN, decode_frames, write_whisper_checkpoint

pytestmark = pytest.mark.parity

DATA = Path(__file__).parent / "data" / "official_pipeline_small.pt"


@pytest.fixture(scope="module")
def official() -> dict:
    return torch.load(DATA, weights_only=True)


@pytest.fixture(scope="module")
def frames(assets: Path, official: dict) -> np.ndarray:
    top, bottom, left, right = official["frames_window"].tolist()
    decoded = decode_frames(assets / "demo1_video.mp4", len(official["anchors"]))
    halved = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in decoded]
    return np.stack([f[top:bottom, left:right] for f in halved])


@pytest.fixture(scope="module")
def unet() -> UNet3DConditionModel:
    ref = torch.load(GOLDEN / "unet_small.pt", weights_only=True)
    model = UNet3DConditionModel.from_config(ref["config"])
    model.load_state_dict(ref["state_dict"])
    return model.eval()


@pytest.fixture(scope="module")
def vae(official: dict) -> AutoencoderKL:
    model = AutoencoderKL.from_config(official["vae_config"])
    model.load_state_dict(official["vae_state_dict"])
    return model.eval()


@pytest.fixture(scope="module")
def audio_encoder(tmp_path_factory: pytest.TempPathFactory) -> AudioEncoder:
    ref = torch.load(GOLDEN / "whisper_tiny_random_encoder.pt", weights_only=True)
    path = tmp_path_factory.mktemp("whisper") / "tiny.pt"
    return AudioEncoder(write_whisper_checkpoint(path, ref["dims"], ref["encoder_state_dict"]))


def restored_region(official: dict, video: np.ndarray) -> np.ndarray:
    top, bottom, left, right = official["restored_box"].tolist()
    return video[:, top:bottom, left:right]


@pytest.mark.parametrize(
    ("resolution", "matrices", "crops"), [(64, "matrices", "faces"), (256, "matrices_256", "faces_256")]
)
def test_alignment_matches_official(
    official: dict, frames: np.ndarray, resolution: int, matrices: str, crops: str
) -> None:
    aligner = FaceAligner(resolution)
    ours = [aligner.align(frame, anchors) for frame, anchors in zip(frames, official["anchors"].numpy())]
    ours_matrices = np.stack([matrix for _, matrix in ours])
    # float32 (official) against float64 (ours) arithmetic; 1e-4 of a pixel per unit of coordinate at most
    assert np.abs(ours_matrices - official[matrices].numpy()).max() < 5e-4
    expected = official[crops].numpy()
    if expected.shape[1] == 3:
        expected = expected.transpose(0, 2, 3, 1)
    diff = np.abs(np.stack([crop for crop, _ in ours[: len(expected)]]).astype(int) - expected.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def denoise(
    official: dict,
    unet: UNet3DConditionModel,
    vae: AutoencoderKL,
    chunks: torch.Tensor,
    steps: int,
    deepcache: bool,
    vae_batch: int = 8,
) -> torch.Tensor:
    """The official run's diffusion on its own aligned faces, chunk by chunk with one seeded generator."""
    settings = DiffusionSettings(
        steps, official["guidance_scale"], deepcache_interval=3 if deepcache else 0, vae_batch=vae_batch
    )
    denoiser = ChunkDenoiser(unet, vae, load_scheduler(), settings)
    generator = seeded_generator(official["seed"], "cpu")
    noise = denoiser.initial_noise(official["resolution"], generator)
    mask = fixed_mask(official["resolution"])
    faces = official["faces"].permute(0, 2, 3, 1).numpy()[: len(chunks)]
    size = official["num_frames"]
    out = []
    for start in range(0, len(faces), size):
        pixel_values = torch.stack([diffusion_inputs(face, mask).pixel_values for face in faces[start : start + size]])
        out.append(
            denoiser(pixel_values, torch.from_numpy(mask)[None, None], chunks[start : start + size], noise, generator)
        )
    return torch.cat(out)


@pytest.fixture(scope="module")
def chunks(official: dict, audio_encoder: AudioEncoder) -> torch.Tensor:
    speech = official["speech"].numpy()
    return audio_encoder.stream(speech).frame_chunks(fps=25, start=0, count=len(official["anchors"]))


@pytest.mark.parametrize(
    ("deepcache", "steps", "key"), [(False, "steps", "synced"), (True, "deepcache_steps", "synced_deepcache")]
)
def test_diffusion_matches_official(official, unet, vae, chunks, deepcache: bool, steps: str, key: str) -> None:
    ours = denoise(official, unet, vae, chunks, official[steps], deepcache)
    assert (ours - official[key]).abs().max() < 1e-4


@pytest.mark.slow
def test_vae_batch_does_not_change_the_result(official, unet, vae, chunks) -> None:
    """The encoder batch size is a memory setting: the posterior noise is one draw per chunk whatever it is."""
    one_step = [denoise(official, unet, vae, chunks[:8], 1, False, vae_batch=batch) for batch in (3, 8)]
    assert (one_step[0] - one_step[1]).abs().max() < 1e-5


def test_paste_back_matches_official(official: dict, frames: np.ndarray) -> None:
    pasted = np.stack(
        [
            paste_back(frame, ((face + 1) * 127.5).permute(1, 2, 0).numpy(), matrix)
            for frame, face, matrix in zip(frames, official["synced"], official["matrices"].numpy())
        ]
    )
    diff = np.abs(restored_region(official, pasted).astype(int) - official["restored"].numpy().astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.02


@pytest.mark.slow
def test_whole_pipeline_matches_official(official, frames, unet, vae, audio_encoder) -> None:
    """Frames and audio in, frames out: faces found by our dlib backend on every frame, as the official run had."""
    pipeline = LipsyncPipeline(unet, vae, audio_encoder, official["resolution"])
    result = pipeline(
        frames,
        official["speech"].numpy(),
        steps=official["steps"],
        guidance_scale=official["guidance_scale"],
        seed=official["seed"],
        batch_frames=official["num_frames"],
        face_tracking=False,
        face_smoothing="official",
        progress=False,
    )
    assert result.video.shape == frames.shape
    diff = np.abs(restored_region(official, result.video).astype(int) - official["restored"].numpy().astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.02
    outside = np.ones(frames.shape[1:3], dtype=bool)
    top, bottom, left, right = official["restored_box"].tolist()
    outside[top:bottom, left:right] = False
    assert np.array_equal(result.video[:, outside], frames[:, outside])


def test_the_harness_prepares_the_recorded_case(official: dict, tmp_path: Path) -> None:
    """Our half of scripts/make_official_goldens.py gives back the very inputs the official run was fed."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_official_goldens.py"
    spec = importlib.util.spec_from_file_location("make_official_goldens", script)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    harness.prepare(tmp_path / "case.pt")
    case = torch.load(tmp_path / "case.pt", weights_only=True)
    for key in ("anchors", "speech", "frames_window"):
        assert torch.equal(case[key], official[key]), key
