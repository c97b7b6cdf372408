"""`latentsync eval`: the metrics lip-sync papers report, computed as the field computes them.

eval sync VIDEO_OR_DIR...       LSE-C / LSE-D and the AV offset per face track, video and folder
eval fvd REAL_DIR FAKE_DIR      FVD with the I3D TorchScript model on face crops of frames 20..35
eval image REAL FAKE            PSNR, SSIM, LPIPS and FID on aligned face crops (and mouth regions)
eval syncnet-acc --config ...   StableSyncNet accuracy on in-sync vs shifted pairs
eval silence VIDEO --audio A    mouth movement while the audio is silent (no weights needed)
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from latentsync.errors import InvalidArgumentError
from latentsync.hub import DEFAULT_VERSION, HUB_REPOS, MissingCheckpointError, checkpoint_paths

logger = logging.getLogger(__name__)

OFFICIAL_FRAMES = "official round trip (H.264/AAC re-encode, JPEGs read by cv2, mp4v/AAC crops): the published kind"
OFFICIAL_CROPPED_FRAMES = "official round trip (JPEG dump at ffmpeg's default quality, read by cv2): the published kind"
FAST_FRAMES = "decoded once (--fast-decode): not the published kind (LSE-C moves by up to a few tenths)"


def auxiliary_file(args: argparse.Namespace, name: str) -> Path:
    """An auxiliary weight file from --weights (or the download layout), or an error naming it and the fetch command."""
    paths = checkpoint_paths(args.version, args.checkpoints)
    folder = Path(args.weights) if args.weights else paths.auxiliary
    path = folder / name
    if not path.is_file():
        raise MissingCheckpointError(
            f"{name} not found in {folder}; fetch the auxiliary weights with "
            f"`latentsync download --version {paths.version} --dir {paths.root} --with-training`"
            + ("" if not args.weights else f" (then pass --weights {paths.auxiliary})")
        )
    return path


def emit(args: argparse.Namespace, summary: dict, text: str, page: str | None) -> None:
    """Print the table or the JSON object, and write the HTML report if asked."""
    from latentsync.eval.report import atomic_write, to_json

    if args.report and page is not None:
        atomic_write(args.report, page)
    if args.json:
        print(to_json(summary))
    else:
        print(text)
        if args.report:
            print(f"report: {args.report}")


def run_sync(args: argparse.Namespace) -> int:
    from latentsync.eval.finders import box_finder
    from latentsync.eval.lse import expand_videos, score_video, summary
    from latentsync.eval.report import sync_report
    from latentsync.eval.sync import SyncScorer

    videos = expand_videos(args.videos)
    if not videos:
        raise InvalidArgumentError(f"no video files in {' '.join(args.videos)}")
    scorer = SyncScorer.load(auxiliary_file(args, "syncnet_v2.model"), args.device)
    finder, detector = None, "the crops themselves (--cropped)"
    if not args.cropped:
        folder = Path(args.weights) if args.weights else checkpoint_paths(args.version, args.checkpoints).auxiliary
        finder, detector = box_finder(args.face_detector, folder, lambda p: auxiliary_file(args, p.name), args.device)
    results = []
    for number, video in enumerate(videos, 1):
        if not args.json:
            print(f"[{number}/{len(videos)}] {video}", file=sys.stderr)
        results.append(score_video(video, scorer, finder, fast_decode=args.fast_decode))
    result = summary(results)
    result["face_detector"] = detector
    result["frames"] = FAST_FRAMES if args.fast_decode else OFFICIAL_CROPPED_FRAMES if args.cropped else OFFICIAL_FRAMES
    text, page = sync_report(result, detector)
    emit(args, result, text, page)
    return 0 if result["scored"] else 1


def run_fvd(args: argparse.Namespace) -> int:
    from latentsync.errors import LatentSyncError
    from latentsync.eval.fvd import CROPS_NOTE, face_clip, fvd
    from latentsync.eval.lse import expand_videos
    from latentsync.faces import create_detector
    from latentsync.models.auxiliary.i3d import load_i3d

    model = load_i3d(auxiliary_file(args, "i3d_torchscript.pt"), args.device or "cpu")
    detector = create_detector(args.face_detector, device=args.device)
    crops = CROPS_NOTE.format(name=args.face_detector)
    logger.warning("FVD: %s", crops)
    videos: list[dict] = []
    clips: dict[str, list] = {"real": [], "fake": []}
    for side, folder in (("real", args.real), ("fake", args.fake)):
        for path in expand_videos([folder]):
            try:
                clips[side].append(face_clip(path, detector))
                videos.append({"path": str(path), "side": side, "error": None})
            except LatentSyncError as exc:
                logger.warning("skipped: %s", exc)
                videos.append({"path": str(path), "side": side, "error": str(exc)})
    value = fvd(clips["real"], clips["fake"], model, standard=args.standard)
    input_range = "[-1, 1] (--standard, comparable with most papers)" if args.standard else "[0, 1] (as LatentSync)"
    result = {
        "videos": videos,
        "fvd": value,
        "input_range": input_range,
        "face_crops": crops,
        "real": len(clips["real"]),
        "fake": len(clips["fake"]),
        "failed": sum(v["error"] is not None for v in videos),
    }
    text = f"FVD {value:.3f} from {result['real']} real and {result['fake']} generated clips; I3D input {input_range}"
    text += f"; {crops}"
    if result["failed"]:
        text += f"; {result['failed']} videos skipped (see --json)"
    from latentsync.eval.report import html_page

    page = html_page("LatentSync FVD", [text], [(videos, ["side", "path", "error"])], [])
    emit(args, result, text, page)
    return 0


def run_image(args: argparse.Namespace) -> int:
    from latentsync.errors import LatentSyncError
    from latentsync.eval.image import ImageMetrics, aligned_crops, pair_videos
    from latentsync.eval.report import bar_plot, html_page, table
    from latentsync.faces import create_detector

    pairs = pair_videos(Path(args.real), Path(args.fake))
    backbone = auxiliary_file(args, "vgg16-397923af.pth")
    detector = create_detector(args.face_detector, device=args.device)
    metrics, rows, scores = ImageMetrics(backbone, args.inception, args.device or "cpu"), [], []
    for real, fake in pairs:
        try:
            score = metrics.score(aligned_crops(real, fake, detector, args.max_frames))
            scores.append(score)
            rows.append({"path": str(fake), "real": str(real), **score, "error": None})
        except LatentSyncError as exc:
            logger.warning("skipped: %s", exc)
            rows.append({"path": str(fake), "real": str(real), "error": str(exc)})
    mean = metrics.mean(scores)
    result = {"pairs": rows, "mean": mean, "scored": len(scores), "failed": len(rows) - len(scores)}
    flat = [
        {
            "video": Path(r["path"]).name,
            **{f"{reg}_{k}": r.get(reg, {}).get(k) for reg in ("face", "mouth") for k in ("psnr", "ssim", "lpips")},
            "error": r["error"],
        }
        for r in rows
    ]
    columns = ["video", "face_psnr", "face_ssim", "face_lpips", "mouth_psnr", "mouth_ssim", "mouth_lpips", "error"]
    text = table(flat, columns)
    if mean:
        text += "\nall frames: " + ", ".join(
            f"{reg} {k} {v:.3f}" for reg in ("face", "mouth") for k, v in mean[reg].items() if v is not None
        )
    good = [r for r in flat if r["error"] is None]
    plots = (
        [bar_plot([r["video"] for r in good], [r["mouth_lpips"] for r in good], "Mouth LPIPS", "lpips")] if good else []
    )
    page = html_page(
        "LatentSync image metrics", ["PSNR/SSIM higher is better, LPIPS/FID lower."], [(flat, columns)], plots
    )
    emit(args, result, text, page)
    return 0 if result["scored"] else 1


def run_syncnet_acc(args: argparse.Namespace) -> int:
    import torch
    from omegaconf import OmegaConf

    from latentsync.config import bundled_config
    from latentsync.eval.lse import expand_videos
    from latentsync.eval.syncnet_acc import accuracy, sample_pairs
    from latentsync.models import StableSyncNet

    config = OmegaConf.load(args.config or bundled_config("syncnet/syncnet_16_pixel_attn.yaml"))
    latent_space = bool(config.data.get("latent_space", False))
    if latent_space and not args.vae:
        raise InvalidArgumentError(
            "this SyncNet config scores VAE latents (data.latent_space: true): pass --vae DIR, the diffusers VAE "
            "folder (e.g. the `vae` folder `latentsync download` fetched)"
        )
    paths = checkpoint_paths(args.version, args.checkpoints)
    checkpoint = Path(args.checkpoint) if args.checkpoint else paths.require(paths.syncnet, "StableSyncNet", True)
    source = args.videos or config.data.val_fileslist or config.data.val_data_dir
    if Path(source).is_file():
        videos = [Path(line.strip()) for line in Path(source).read_text().splitlines() if line.strip()]
    else:
        videos = expand_videos([source]) if Path(source).is_dir() else []
    if not videos:
        raise InvalidArgumentError(f"no clips in {source}; pass --videos DIR (aligned 256 px face clips with audio)")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.float16 if device.type == "cuda" else torch.float32  # the official script runs fp16 on the GPU
    model = StableSyncNet.from_pretrained(config.model, checkpoint, device).to(dtype)
    vae = None
    if latent_space:
        from latentsync.models.vae import load_vae

        vae = load_vae(args.vae, device, dtype)
    samples = args.samples or int(config.data.num_val_samples)
    seed = int(config.run.seed) if args.seed is None else args.seed
    torch.manual_seed(seed)  # the latents' posterior draws, as the official script's set_seed
    pairs = sample_pairs(videos, samples, seed, int(config.data.num_frames), int(config.data.resolution))
    result = {
        "checkpoint": str(checkpoint),
        "clips": len(videos),
        "seed": seed,
        **accuracy(model, pairs, bool(config.data.lower_half), dtype=dtype, latent_space=latent_space, vae=vae),
    }
    text = (
        f"SyncNet accuracy: {100 * result['accuracy']:.2f}% ({result['correct']}/{result['pairs']} pairs, seed {seed})"
    )
    emit(args, result, text, None)
    return 0


def run_silence(args: argparse.Namespace) -> int:
    from latentsync.audio import load_audio
    from latentsync.eval.report import html_page, table
    from latentsync.eval.silence import mouth_series, silence_report
    from latentsync.faces import create_detector
    from latentsync.media import VideoReader

    audio = load_audio(args.audio or args.video)
    opening = mouth_series(
        VideoReader(args.video, fps=25),
        create_detector(args.face_detector, device=args.device),
        limit=math.ceil(len(audio) / 640),
    )
    result = {"video": str(args.video), "audio": str(args.audio or args.video), **silence_report(opening, audio)}
    columns = ["silent_seconds", "silent_movement", "speech_movement", "silent_opening", "frames_with_face", "frames"]
    text = table([result], columns) + "\nmovement: mean change of the lip gap, % of the jaw width per frame"
    page = html_page("LatentSync silence check", [f"{args.video} with {result['audio']}"], [([result], columns)], [])
    emit(args, result, text, page)
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", default=None, metavar="OUT.html", help="also write an HTML report with plots")
    parser.add_argument(
        "--weights",
        default=None,
        metavar="DIR",
        help="folder with the auxiliary weight files (default: <checkpoints>/v<version>/auxiliary)",
    )
    parser.add_argument("--checkpoints", default=None, help="folder laid out by `latentsync download`")
    parser.add_argument("--version", choices=sorted(HUB_REPOS), default=DEFAULT_VERSION, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")


def register(sub: argparse._SubParsersAction) -> None:
    from latentsync.eval.finders import FINDERS
    from latentsync.faces.landmarks import BACKENDS

    text = "score videos with the metrics lip-sync papers report"
    ev = sub.add_parser("eval", help=text, description=text)
    metrics = ev.add_subparsers(dest="metric", required=True, metavar="METRIC")

    sync = metrics.add_parser("sync", help="LSE-C / LSE-D (SyncNet confidence and distance) and the AV offset")
    sync.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="videos, or folders of videos")
    sync.add_argument("--cropped", action="store_true", help="the videos are already face crops: no face finding")
    sync.add_argument(
        "--fast-decode",
        action="store_true",
        help="decode each video once and hand the frames over directly, skipping the official pipeline's re-encode "
        "and JPEG dumps: faster, but the numbers are then not exactly the published kind",
    )
    sync.add_argument(
        "--face-detector",
        choices=FINDERS,
        default="auto",
        help="face tracks from S3FD (the published kind; default when sfd_face.pth is present) "
        "or a landmark backend of the project (dlib otherwise)",
    )
    _common(sync)
    sync.set_defaults(run=run_sync)

    fvd = metrics.add_parser("fvd", help="Fréchet video distance (I3D) between real and generated face clips")
    fvd.add_argument("real", help="folder (or video) of real videos")
    fvd.add_argument("fake", help="folder (or video) of generated videos")
    fvd.add_argument(
        "--standard",
        action="store_true",
        help="feed I3D [-1, 1] like most papers (default [0, 1], as LatentSync's eval does)",
    )
    fvd.add_argument("--face-detector", choices=list(BACKENDS), default="dlib", help="landmark backend for the boxes")
    _common(fvd)
    fvd.set_defaults(run=run_fvd)

    image = metrics.add_parser("image", help="PSNR, SSIM, LPIPS (and FID) of aligned face crops, face and mouth")
    image.add_argument("real", help="source video, or a folder of them")
    image.add_argument("fake", help="lip-synced video, or a folder of them (paired by file name)")
    image.add_argument(
        "--inception",
        default=None,
        type=Path,
        metavar="FILE",
        help="torch-fidelity Inception weights (weights-inception-2015-12-05-6726825d.pth) for FID",
    )
    image.add_argument("--max-frames", type=int, default=None, help="compare at most this many frames per video")
    image.add_argument("--face-detector", choices=list(BACKENDS), default="dlib", help="landmark backend")
    _common(image)
    image.set_defaults(run=run_image)

    acc = metrics.add_parser("syncnet-acc", help="StableSyncNet accuracy on in-sync vs shifted pairs (cos > 0.5)")
    acc.add_argument("--config", default=None, help="SyncNet config (default: the bundled syncnet_16_pixel_attn.yaml)")
    acc.add_argument(
        "--checkpoint", default=None, help="StableSyncNet weights (default: the downloaded stable_syncnet.pt)"
    )
    acc.add_argument(
        "--videos", default=None, help="folder or file list of aligned face clips (default: the config's val data)"
    )
    acc.add_argument(
        "--samples", type=int, default=None, help="pairs to draw (default: the config's num_val_samples, 2048)"
    )
    acc.add_argument("--seed", type=int, default=None, help="pair sampling seed (default: the config's run.seed)")
    acc.add_argument(
        "--vae",
        default=None,
        metavar="DIR",
        help="diffusers VAE folder that encodes the frames, for latent-space configs (syncnet_16_latent.yaml)",
    )
    _common(acc)
    acc.set_defaults(run=run_syncnet_acc)

    silence = metrics.add_parser("silence", help="how much the mouth moves while the audio is silent (no weights)")
    silence.add_argument("video", help="the (lip-synced) video")
    silence.add_argument("--audio", default=None, help="the speech it was synced to (default: the video's own)")
    silence.add_argument("--face-detector", choices=list(BACKENDS), default="dlib", help="landmark backend")
    _common(silence)
    silence.set_defaults(run=run_silence)
