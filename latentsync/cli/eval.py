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

from latentsync.checkpoints import DEFAULT_VERSION, HUB_REPOS, MissingCheckpointError, checkpoint_paths
from latentsync.errors import InvalidArgumentError

logger = logging.getLogger(__name__)


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
        results.append(score_video(video, scorer, finder))
    result = summary(results)
    result["face_detector"] = detector
    text, page = sync_report(result, detector)
    emit(args, result, text, page)
    return 0 if result["scored"] else 1


def run_silence(args: argparse.Namespace) -> int:
    from latentsync.audio import load_audio
    from latentsync.eval.report import html_page, table
    from latentsync.eval.silence import mouth_series, silence_report
    from latentsync.faces import create_detector
    from latentsync.media import VideoReader

    audio = load_audio(args.audio or args.video)
    opening = mouth_series(VideoReader(args.video, fps=25), create_detector(args.face_detector, device=args.device),
                           limit=math.ceil(len(audio) / 640))  # fmt: skip
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

    ev = sub.add_parser("eval", help="score videos with the metrics lip-sync papers report")
    metrics = ev.add_subparsers(dest="metric", required=True, metavar="METRIC")

    sync = metrics.add_parser("sync", help="LSE-C / LSE-D (SyncNet confidence and distance) and the AV offset")
    sync.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="videos, or folders of videos")
    sync.add_argument("--cropped", action="store_true", help="the videos are already face crops: no face finding")
    sync.add_argument(
        "--face-detector",
        choices=FINDERS,
        default="auto",
        help="face tracks from S3FD (the published kind; default when sfd_face.pth is present) "
        "or a landmark backend of the project (dlib otherwise)",
    )
    _common(sync)
    sync.set_defaults(run=run_sync)

    silence = metrics.add_parser("silence", help="how much the mouth moves while the audio is silent (no weights)")
    silence.add_argument("video", help="the (lip-synced) video")
    silence.add_argument("--audio", default=None, help="the speech it was synced to (default: the video's own)")
    silence.add_argument("--face-detector", choices=list(BACKENDS), default="dlib", help="landmark backend")
    _common(silence)
    silence.set_defaults(run=run_silence)
