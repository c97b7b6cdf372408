"""Regenerate `tests/data/official_pipeline_small.pt` by running the official LatentSync code (not this package).

This is the harness behind the file `tests/test_official_parity.py` checks us against; `tests/data/README.md`
describes the case. It is not part of the package and does not run in our environment: it imports the official
code, so it needs its own environment.

    git clone https://github.com/bytedance/LatentSync official && git -C official checkout a229c39
    python -m venv /tmp/official-env && . /tmp/official-env/bin/activate
    pip install -r official/requirements.txt diffusers==0.42.1 DeepCache opencv-python av
    # inputs made by our package once, in our environment (anchors from our dlib backend, the speech window):
    PYTHONPATH=. python scripts/make_official_goldens.py prepare --out /tmp/case.pt
    # then, in the official environment, from the official checkout (it reads latentsync/utils/mask.png):
    cd official && python ../scripts/make_official_goldens.py run --case /tmp/case.pt \\
        --golden ../../shared/golden --out ../tests/data/official_pipeline_small.pt

What `run` replaces in the official `LipsyncPipeline.__call__`, and nothing else: its video and audio reading
(the case's frames and speech instead of files), its ffmpeg calls and file writing (captured in memory), its
insightface detector (a stand-in returning 106-point landmarks whose official averages are the case's anchors),
the CUDA device of its `ImageProcessor` (CPU) and the float16 of its `AlignRestore` (float32). Everything runs
on the CPU in float32, seeded with `torch.manual_seed(1247)` as the official inference script does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

CASE_FRAMES = 12
FRAMES_WINDOW = (200, 520, 150, 470)  # rows, then columns, of the half-size frames: the face fills 320 px
RESOLUTION, CHUNK, STEPS, DEEPCACHE_STEPS, GUIDANCE, SEED = 64, 8, 3, 5, 1.5, 1247
SPEECH_SAMPLES = 7680  # demo1's first 0.48 s at 16 kHz: 12 frames
# Indices the official `ImageProcessor.affine_transform` averages into its three alignment points.
LEFT_BROW, RIGHT_BROW, NOSE = [43, 48, 49, 51, 50], list(range(101, 106)), [74, 77, 83, 86]


def prepare(out: Path) -> None:
    """Our side (this package's environment): the cut frames, their anchors from our dlib backend, the speech."""
    import cv2

    from latentsync.audio import load_audio
    from latentsync.faces import create_detector, select_face
    from latentsync.testing import ASSETS, decode_frames

    top, bottom, left, right = FRAMES_WINDOW
    halved = [
        cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
        for f in decode_frames(ASSETS / "demo1_video.mp4", CASE_FRAMES)
    ]
    frames = np.stack([f[top:bottom, left:right] for f in halved])
    detector = create_detector("dlib")
    anchors = np.stack([np.round(select_face(detector.detect(frame)).anchors()) for frame in frames])
    speech = load_audio(ASSETS / "demo1_audio.wav")[:SPEECH_SAMPLES]
    torch.save(
        {
            "frames": torch.from_numpy(frames),
            "frames_window": torch.tensor(FRAMES_WINDOW),
            "anchors": torch.from_numpy(anchors.astype(np.float32)),
            "speech": torch.from_numpy(speech),
        },
        out,
    )


class _Landmarks:
    """Stands in for the official insightface detector: 106 points whose official averages are the anchors."""

    def __init__(self, anchors: np.ndarray) -> None:
        self.anchors, self.calls = anchors, 0

    def __call__(self, frame: np.ndarray) -> tuple[list[int], np.ndarray]:
        left, right, nose = self.anchors[self.calls % len(self.anchors)]
        self.calls += 1
        points = np.zeros((106, 2), np.float32)
        points[LEFT_BROW], points[RIGHT_BROW], points[NOSE] = left, right, nose
        return [0, 0, frame.shape[1], frame.shape[0]], points


def _matrices(matrices: list) -> torch.Tensor:
    """(n, 2, 3) float32 from the official per-frame matrices (numpy arrays or tensors with a batch axis)."""
    return torch.stack([torch.as_tensor(np.asarray(m, dtype=np.float32)).reshape(2, 3) for m in matrices])


def _cpu_processor(anchors: np.ndarray) -> type:
    """The official ImageProcessor on the CPU in float32, finding the case's anchors instead of detecting."""
    from latentsync.utils.affine_transform import AlignRestore
    from latentsync.utils.image_processor import ImageProcessor

    class CpuProcessor(ImageProcessor):
        def __init__(self, resolution: int, device: str = "cpu", mask_image=None) -> None:
            super().__init__(resolution, device="cpu", mask_image=mask_image)
            self.restorer = AlignRestore(resolution=resolution, device="cpu", dtype=torch.float32)
            self.face_detector = _Landmarks(anchors)

    return CpuProcessor


def _official_pipeline(golden: Path, case: dict, vae_state: dict | None, workdir: Path):
    """The official pipeline around the golden U-Net, a small random VAE and the golden random Whisper encoder."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from latentsync.whisper.audio2feature import Audio2Feature
    from latentsync.whisper.whisper.model import ModelDimensions, Whisper

    from latentsync.models.unet import UNet3DConditionModel
    from latentsync.pipelines import lipsync_pipeline as official

    ref = torch.load(golden / "unet_small.pt", weights_only=True)
    torch.save({"state_dict": ref["state_dict"], "global_step": 0}, workdir / "unet.pt")
    unet, _ = UNet3DConditionModel.from_pretrained(ref["config"], str(workdir / "unet.pt"), device="cpu")

    encoder = torch.load(golden / "whisper_tiny_random_encoder.pt", weights_only=True)
    torch.manual_seed(0)  # the decoder is never used for the features; any weights do
    whisper = Whisper(ModelDimensions(**encoder["dims"]))
    state = whisper.state_dict()
    state.update(encoder["encoder_state_dict"])
    torch.save({"dims": encoder["dims"], "model_state_dict": state}, workdir / "whisper.pt")
    audio_encoder = Audio2Feature(model_path=str(workdir / "whisper.pt"), device="cpu", num_frames=CHUNK)

    vae_config = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [32, 32, 32, 32],
        "layers_per_block": 1,
        "act_fn": "silu",
        "latent_channels": 4,
    }
    torch.manual_seed(1)
    vae = AutoencoderKL(**vae_config)
    if vae_state is not None:
        vae.load_state_dict(vae_state)
    vae.config.scaling_factor, vae.config.shift_factor = 0.18215, 0

    scheduler = DDIMScheduler.from_pretrained("configs")
    pipeline = official.LipsyncPipeline(vae=vae, audio_encoder=audio_encoder, unet=unet, scheduler=scheduler)

    # Inputs from the case instead of files; no ffmpeg; outputs captured.
    frames, speech = case["frames"].numpy(), case["speech"].numpy()
    captured: dict = {}
    official.check_ffmpeg_installed = lambda: None
    official.read_video = lambda *a, **k: frames
    official.read_audio = lambda *a, **k: torch.from_numpy(speech)
    official.write_video = lambda *a, **k: None
    official.subprocess.run = lambda *a, **k: None
    official.sf.write = lambda *a, **k: None
    to_chunks = audio_encoder.feature2chunks
    audio_encoder.audio2feat = lambda _path: audio_encoder._audio2feat(speech)
    audio_encoder.feature2chunks = lambda **kw: to_chunks(**kw)[: len(frames)]
    official.ImageProcessor = _cpu_processor(case["anchors"].numpy())
    transform, restore = pipeline.affine_transform_video, pipeline.restore_video

    def affine_transform_video(video_frames):
        faces, boxes, matrices = transform(video_frames)
        captured.update(faces=torch.as_tensor(faces).clone(), matrices=_matrices(matrices))
        return faces, boxes, matrices

    def restore_video(faces, video_frames, boxes, matrices):
        captured["synced"] = faces.float().clone()
        captured["restored"] = restore(faces, video_frames, boxes, matrices)
        return captured["restored"]

    pipeline.affine_transform_video, pipeline.restore_video = affine_transform_video, restore_video
    return pipeline, vae, vae_config, captured


def run(case_path: Path, golden: Path, out: Path) -> None:
    """The official side (the official environment, run from the official checkout)."""
    sys.path.insert(0, str(Path.cwd()))
    import tempfile

    case = torch.load(case_path, weights_only=True)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        vae_state = None
        for key, steps, deepcache in (("synced", STEPS, False), ("synced_deepcache", DEEPCACHE_STEPS, True)):
            pipeline, vae, vae_config, captured = _official_pipeline(golden, case, vae_state, Path(tmp))
            vae_state = vae.state_dict()
            if deepcache:
                from DeepCache import DeepCacheSDHelper

                helper = DeepCacheSDHelper(pipe=pipeline)
                helper.set_params(cache_interval=3, cache_branch_id=0)
                helper.enable()
            torch.manual_seed(SEED)
            pipeline(
                video_path="case.mp4",
                audio_path="case.wav",
                video_out_path=str(Path(tmp) / "out.mp4"),
                num_frames=CHUNK,
                video_fps=25,
                height=RESOLUTION,
                width=RESOLUTION,
                num_inference_steps=steps,
                guidance_scale=GUIDANCE,
                weight_dtype=torch.float32,
                temp_dir=str(Path(tmp) / "temp"),
            )
            if not deepcache:
                results.update(captured, vae_config=vae_config, vae_state_dict=vae_state)
            results[key] = captured["synced"]

        # The official aligner at the real 256 px crop size on the same anchors (crops of the first two frames).
        processor = _cpu_processor(case["anchors"].numpy())(256)
        aligned = [processor.affine_transform(frame) for frame in case["frames"].numpy()]
        results["matrices_256"] = _matrices([m for _, _, m in aligned])
        results["faces_256"] = torch.stack([face for face, _, _ in aligned[:2]]).permute(0, 2, 3, 1).contiguous()

    frames = case["frames"].numpy()
    changed = np.argwhere((results["restored"] != frames).any(axis=(0, 3)))
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0) + 1
    results["restored"] = torch.from_numpy(results["restored"][:, top:bottom, left:right].copy())
    results.update(
        about="official LatentSync a229c39 on CPU fp32; see tests/data/README.md",
        resolution=RESOLUTION,
        num_frames=CHUNK,
        seed=SEED,
        guidance_scale=GUIDANCE,
        steps=STEPS,
        deepcache_steps=DEEPCACHE_STEPS,
        frames_window=case["frames_window"],
        anchors=case["anchors"],
        speech=case["speech"],
        restored_box=torch.tensor([top, bottom, left, right]),
    )
    torch.save(results, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="our side: frames, anchors and speech of the case")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="the official side: run the official pipeline on the case")
    r.add_argument("--case", type=Path, required=True)
    r.add_argument("--golden", type=Path, required=True, help="../shared/golden (unet_small.pt, whisper encoder)")
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out)
    else:
        run(args.case, args.golden, args.out)


if __name__ == "__main__":
    main()
