"""Frame-quality metrics of a lip-synced video against its source: PSNR, SSIM, LPIPS and FID on aligned face crops.

Both videos are cropped with the alignment found on the *real* one (faces/track + faces/align, the crop the model
sees, 256 px), so the pair shows the same face at the same place and only what the model changed differs. Each metric
is given on the whole crop and on the mouth region (its lower half, the part LatentSync regenerates). The metrics are
torchmetrics' PSNR and SSIM (data range 1), the lpips package's VGG LPIPS (backbone from the local
`vgg16-397923af.pth`), and torchmetrics' FID with torch-fidelity's Inception from a local weights file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from latentsync.errors import LatentSyncError
from latentsync.faces.landmarks import LandmarkDetector

RESOLUTION = 256
REGIONS = ("face", "mouth")
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


def pair_videos(real: Path, fake: Path) -> list[tuple[Path, Path]]:
    """(real, fake) pairs: two files, or the files of two folders matched by name."""
    from .lse import expand_videos

    if real.is_dir() != fake.is_dir():
        raise LatentSyncError("give two videos or two folders (videos are paired by file name)")
    if not real.is_dir():
        return [(real, fake)]
    fakes = {p.name: p for p in expand_videos([fake])}
    pairs = [(p, fakes[p.name]) for p in expand_videos([real]) if p.name in fakes]
    if not pairs:
        raise LatentSyncError(f"no video in {fake} has the name of one in {real}")
    return pairs


def aligned_crops(real: Path, fake: Path, detector: LandmarkDetector, limit: int | None = None) -> Iterator:
    """(real crop, fake crop) uint8 pairs of every frame where the real video shows a face."""
    from latentsync.faces import crop_face, track_faces
    from latentsync.media import VideoReader

    track = track_faces(VideoReader(real, fps=25), detector, RESOLUTION, limit=limit, progress=False)
    for index, (a, b) in enumerate(zip(VideoReader(real, fps=25), VideoReader(fake, fps=25))):
        if index >= len(track):
            break
        if a.shape != b.shape:
            raise LatentSyncError(f"{real} is {a.shape[1]}x{a.shape[0]} but {fake} is {b.shape[1]}x{b.shape[0]}")
        if track.found[index]:
            matrix = track.matrices[index]
            yield crop_face(a, matrix, RESOLUTION), crop_face(b, matrix, RESOLUTION)


def lpips_vgg(backbone: Path | None) -> torch.nn.Module:
    """LPIPS (VGG) with the backbone read from a local torchvision `vgg16-397923af.pth`, nothing downloaded."""
    import lpips
    from torchvision.models.vgg import cfgs, make_layers

    metric = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    if backbone is not None:
        features = make_layers(cfgs["D"])  # torchvision's vgg16().features, without building its classifier
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        features.load_state_dict(
            {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        )
        for block in (metric.net.slice1, metric.net.slice2, metric.net.slice3, metric.net.slice4, metric.net.slice5):
            for name, layer in block.named_children():
                layer.load_state_dict(features[int(name)].state_dict())
    return metric.eval().requires_grad_(False)


class ImageMetrics:
    """Scores crop pairs video by video; the models are built once, FID accumulates over every pair scored."""

    def __init__(self, lpips_backbone: Path | None, inception: Path | None = None, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.lpips = lpips_vgg(lpips_backbone).to(device)
        self.fid = {}
        if inception is not None:
            if not Path(inception).is_file():
                from latentsync.hub import MissingCheckpointError

                raise MissingCheckpointError(
                    f"Inception weights {inception} not found: FID needs torch-fidelity's file, download it from "
                    f"{INCEPTION_URL} (or leave out --inception to skip FID)"
                )
            from torchmetrics.image.fid import FrechetInceptionDistance

            self.fid = {
                r: FrechetInceptionDistance(feature_extractor_weights_path=str(inception), normalize=True).to(device)
                for r in REGIONS
            }
        self.fid_frames = 0

    @torch.no_grad()
    def score(self, pairs: Iterator[tuple[np.ndarray, np.ndarray]]) -> dict:
        """The metrics of one video's (real, fake) uint8 crop pairs, per region."""
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

        psnr = {r: PeakSignalNoiseRatio(data_range=1.0).to(self.device) for r in REGIONS}
        ssim = {r: StructuralSimilarityIndexMeasure(data_range=1.0).to(self.device) for r in REGIONS}
        lpips_sum = dict.fromkeys(REGIONS, 0.0)
        count = 0
        for real, fake in pairs:
            a = torch.from_numpy(real).to(self.device).permute(2, 0, 1)[None].float() / 255
            b = torch.from_numpy(fake).to(self.device).permute(2, 0, 1)[None].float() / 255
            for region in REGIONS:
                x, y = (a, b) if region == "face" else (a[:, :, RESOLUTION // 2 :], b[:, :, RESOLUTION // 2 :])
                psnr[region].update(y, x)
                ssim[region].update(y, x)
                lpips_sum[region] += float(torch.as_tensor(self.lpips(y * 2 - 1, x * 2 - 1)).sum())
                if self.fid:
                    self.fid[region].update(x, real=True)
                    self.fid[region].update(y, real=False)
            count += 1
        if not count:
            raise LatentSyncError("no face found in any frame: nothing to compare")
        self.fid_frames += count
        out: dict = {"frames": count}
        for region in REGIONS:
            value = float(psnr[region].compute())
            out[region] = {
                "psnr": value if np.isfinite(value) else None,  # identical crops: infinite PSNR
                "ssim": float(torch.as_tensor(ssim[region].compute())),
                "lpips": lpips_sum[region] / count,
            }
        return out

    def mean(self, results: list[dict]) -> dict | None:
        """Frame-weighted means over the videos scored (PSNR over the finite ones), and FID over all their frames."""
        if not results:
            return None
        frames = np.array([r["frames"] for r in results], dtype=np.float64)
        out: dict = {"frames": int(frames.sum())}
        for region in REGIONS:
            out[region] = {}
            for key in ("psnr", "ssim", "lpips"):
                values = [(r[region][key], f) for r, f in zip(results, frames) if r[region][key] is not None]
                out[region][key] = (sum(v * f for v, f in values) / sum(f for _, f in values)) if values else None
            out[region]["fid"] = float(self.fid[region].compute()) if self.fid and self.fid_frames > 1 else None
        return out
