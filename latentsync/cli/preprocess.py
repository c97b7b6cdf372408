"""`latentsync preprocess` (raw videos -> aligned training clips, resumable; `--report`) and `latentsync fileslist`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentsync.cli.options import devices
from latentsync.errors import InvalidArgumentError


def run(args: argparse.Namespace) -> int:
    from latentsync.data.preprocess import Settings, run_preprocess
    from latentsync.data.preprocess.runner import parse_shard
    from latentsync.hub import DEFAULT_VERSION, checkpoint_paths

    if args.report:
        if len(args.paths) != 1:
            raise InvalidArgumentError("--report takes one folder: latentsync preprocess --report OUT_DIR")
        return report(Path(args.paths[0]))
    if len(args.paths) != 2:
        raise InvalidArgumentError("give RAW_DIR and OUT_DIR: latentsync preprocess RAW_DIR OUT_DIR")
    settings = Settings(
        resolution=args.resolution,
        landmarks=args.landmarks,
        face_smoothing=args.face_smoothing,
        second_face_ratio=args.second_face,
        crf=args.crf,
        sync_min_conf=args.sync_conf,
        sync_max_offset=args.sync_offset,
        quality_min=args.quality_min,
    )
    summary = run_preprocess(
        args.paths[0],
        args.paths[1],
        settings,
        checkpoint_paths(DEFAULT_VERSION, args.checkpoints).auxiliary,
        workers=args.workers,
        shard=parse_shard(args.shard) if args.shard else None,
        ray_address=args.ray or None,
        use_ray=args.ray is not None,
        progress=not args.quiet,
        devices=args.devices,
        scorers=args.scorers,
    )
    if not args.quiet:
        for name, stats in summary.scorers.items():
            print(f"scorer {name}: " + ", ".join(f"{count} {what}" for what, count in stats.items()))
        print(
            f"{summary.inputs} inputs, {summary.processed} processed in this run, {summary.kept_clips} clips kept; "
            f"see `latentsync preprocess --report {args.paths[1]}`"
        )
    return 0


def report(out_dir: Path) -> int:
    from latentsync.data.preprocess.report import SHEET, build_report, contact_sheet

    print(build_report(out_dir).text())
    shown = contact_sheet(out_dir, out_dir / SHEET)
    print(f"contact sheet: {out_dir / SHEET} ({shown} clips)" if shown else "contact sheet: no kept clips")
    return 0


def run_fileslist(args: argparse.Namespace) -> int:
    from latentsync.data.fileslist import fileslist

    sys.stdout.write(fileslist(args.out_dir))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pre = sub.add_parser(
        "preprocess",
        help="turn raw talking videos into aligned training clips (resumable)",
        description="turn raw talking videos into aligned training clips (resumable)",
        usage="latentsync preprocess RAW_DIR OUT_DIR [options] | latentsync preprocess --report OUT_DIR",
    )
    pre.add_argument("paths", nargs="+", metavar="RAW_DIR OUT_DIR", help="raw videos (only read) and the output folder")
    pre.add_argument("--report", action="store_true", help="summarise OUT_DIR and write its contact_sheet.png")
    pre.add_argument("--resolution", type=int, choices=(256, 512), default=256, help="clip size R (default 256)")
    pre.add_argument("--workers", type=int, default=1, help="worker processes for stages 1-5 (default 1)")
    pre.add_argument(
        "--devices",
        type=devices,
        default=None,
        metavar="LIST",
        help="a scoring process (sync and quality models) per device, e.g. cuda:0,cuda:1; default: one per visible "
        "GPU with --workers 2 or more, none on a machine without GPU (each worker scores its own clips)",
    )
    pre.add_argument("--shard", default=None, metavar="I/N", help="process only shard I of N (e.g. a SLURM array task)")
    pre.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run each video as a Ray task, on the cluster at ADDRESS (else RAY_ADDRESS, else a local instance); "
        "the sync and quality models in an actor per GPU",
    )
    pre.add_argument(
        "--scorers",
        type=int,
        default=1,
        metavar="N",
        help="with --ray on a cluster without GPU: N scoring actors of one CPU each (default 1)",
    )
    pre.add_argument(
        "--checkpoints", default=None, help="checkpoints folder holding v1.6/auxiliary (sync and quality filters)"
    )
    pre.add_argument("--landmarks", default="dlib", help="face landmark backend (default dlib)")
    pre.add_argument(
        "--face-smoothing",
        choices=("steady", "official"),
        default="steady",
        help="steady each clip's face anchors as inference does (default), or align frame by frame as the official "
        "pipeline; a change redoes only the alignment and later stages",
    )
    pre.add_argument(
        "--second-face",
        type=float,
        default=0.5,
        metavar="RATIO",
        help="drop a segment where another face has RATIO of the chosen face's area (0: keep)",
    )
    pre.add_argument("--crf", type=int, default=18, help="H.264 quality of the clips (default 18)")
    pre.add_argument("--sync-conf", type=float, default=3.0, help="minimum SyncNet confidence (default 3)")
    pre.add_argument("--sync-offset", type=int, default=6, help="largest |audio offset| kept, frames (default 6)")
    pre.add_argument("--quality-min", type=float, default=40.0, help="lowest HyperIQA score kept, 0-100 (default 40)")
    pre.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    pre.set_defaults(run=run)
    files = sub.add_parser(
        "fileslist",
        help="print the training file list of a preprocessed folder",
        description="Print the kept clips of a preprocessed folder, one absolute path a line: the file that "
        "data.train_fileslist of a training config names (latentsync fileslist OUT_DIR > list.txt).",
    )
    files.add_argument("out_dir", metavar="OUT_DIR", help="the output folder of `latentsync preprocess`")
    files.set_defaults(run=run_fileslist)
