"""Random-weight auxiliary files in the official formats, for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import torch

from latentsync.models.auxiliary.syncnet_v2 import SyncNetV2


def golden_syncnet_v2_state(golden_dir: Path) -> dict[str, torch.Tensor]:
    """The golden's random syncnet_v2 weights, decoded as its meta says (int8 codes times a power of two)."""
    w = torch.load(golden_dir / "syncnet_v2_random_weights.pt", weights_only=True)
    codes, exps = w["weight_codes_int8"], w["weight_exp2"]
    return {**w["state_dict_rest"], **{k: codes[k].float() * 2.0 ** exps[k] for k in codes}}


def write_syncnet_v2(path: Path, seed: int = 0) -> Path:
    """A random `syncnet_v2.model` in the official layout (a bare state dict, torch's legacy format)."""
    torch.manual_seed(seed)
    torch.save(SyncNetV2().state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def write_s3fd(path: Path, seed: int = 0) -> Path:
    """A random `sfd_face.pth` in the official layout (a bare state dict)."""
    from latentsync.models.auxiliary.s3fd import S3FDNet

    torch.manual_seed(seed)
    torch.save(S3FDNet().state_dict(), path)
    return path


class _TinyI3D(torch.nn.Module):
    """Stands in for StyleGAN-V's I3D: the same call signature and 400-d features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 16, (3, 7, 7), stride=(2, 4, 4))
        self.fc = torch.nn.Linear(16, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        return self.fc(self.conv(x).relu().mean((2, 3, 4)))


def write_i3d(path: Path, seed: int = 0) -> Path:
    """A random TorchScript file called as `i3d_torchscript.pt` is."""
    torch.manual_seed(seed)
    torch.jit.script(_TinyI3D()).save(str(path))
    return path


def write_vgg16(path: Path, seed: int = 0) -> Path:
    """A random torchvision `vgg16-397923af.pth` holding the convolutional part LPIPS uses (fp16 to stay small)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    features = make_layers(cfgs["D"])
    torch.save({f"features.{k}": v.half() for k, v in features.state_dict().items()}, path)
    return path


def write_inception(path: Path, seed: int = 0) -> Path:
    """A random torch-fidelity `weights-inception-2015-12-05-6726825d.pth` (its state dict; fp16 to halve it)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    torch.manual_seed(seed)
    # Build the network without fetching the real weights: nothing to load, the layers keep their random init.
    with (
        mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}),
        mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"),
    ):
        model = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    # Default init shrinks the signal layer after layer until every image gives the same features; batch-norm
    # statistics of one batch of noise images keep it at unit scale, so different images give different features.
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None
    with torch.no_grad():
        model.train()(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    return path


def write_face_clips(folder: Path, assets: Path, frames: int = 36, degrade: bool = False) -> list[Path]:
    """480x480 clips around the speaker's face of demo1 and demo3 (optionally blurred and noisy), with their sound."""
    import itertools

    import cv2
    import numpy as np

    from latentsync.audio import load_audio
    from latentsync.media import VideoReader, VideoWriter

    centres = {"demo1": (599, 734), "demo3": (581, 651)}
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for name, (cx, cy) in centres.items():
        path = folder / f"{name}.mp4"
        sound = load_audio(assets / f"{name}_video.mp4")[: frames * 640]
        with VideoWriter(path, 480, 480, fps=25, audio=sound, sample_rate=16000) as writer:
            for frame in itertools.islice(VideoReader(assets / f"{name}_video.mp4", fps=25), frames):
                face = np.ascontiguousarray(frame[cy - 240 : cy + 240, cx - 240 : cx + 240])
                if degrade:
                    face = cv2.GaussianBlur(face, (9, 9), 3)
                    face = np.clip(face + rng.normal(0, 12, face.shape), 0, 255).astype(np.uint8)
                writer.write(face)
        out.append(path)
    return out
