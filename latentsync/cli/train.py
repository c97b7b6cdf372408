"""`latentsync train unet|syncnet|cache|merge`: training from an official config, alone or under torchrun, and
folding a LoRA adapter into a full checkpoint."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path


def _config(args: argparse.Namespace):
    from latentsync.config import load_config
    from latentsync.data.sources import data_overrides

    extra = data_overrides(args.data) if getattr(args, "data", None) else []
    return load_config(args.config, [*args.overrides, *extra])


def run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    kind = "syncnet" if "visual_encoder" in cfg.model else "unet"
    if args.what == "cache":
        return _cache(args, cfg, kind)
    if args.what == "merge":
        return _merge(args, cfg, kind)
    if args.what != kind:
        raise _wrong_config(args, kind)
    if kind == "unet":
        from latentsync.train.unet import train_unet as train
    else:
        from latentsync.train.syncnet import train_syncnet as train
    result = train(cfg, args.output_dir, args.resume, args.device, progress=not args.quiet)
    where = f", checkpoint {result.last_checkpoint}" if result.last_checkpoint else ""
    if result.replaced_samples:
        where += f"; {result.replaced_samples} samples came from replacement clips (see the warnings)"
    if result.stopped_by:
        print(f"stopped by {result.stopped_by} at step {result.step}{where}; continue with --resume auto")
        return 128 + getattr(signal, result.stopped_by, signal.SIGTERM)
    print(f"done at step {result.step}{where}")
    return 0


def _wrong_config(args: argparse.Namespace, kind: str) -> Exception:
    from latentsync.errors import LatentSyncError

    return LatentSyncError(f"--config {args.config} is a {kind} config; use `latentsync train {kind}`")


def _merge(args: argparse.Namespace, cfg, kind: str) -> int:
    from latentsync.train.lora import write_merged_checkpoint

    if kind != "unet":
        from latentsync.errors import LatentSyncError

        raise LatentSyncError(f"--config {args.config} is a {kind} config; LoRA adapters merge into a U-Net config")
    start = args.checkpoint or cfg.ckpt.resume_ckpt_path
    print(f"wrote {write_merged_checkpoint(cfg.model, start, args.lora, args.output)}")
    return 0


def _cache(args: argparse.Namespace, cfg, kind: str) -> int:
    import os

    from latentsync.data.cache_fill import fill_caches

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    counts = fill_caches(cfg, kind, args.workers, rank, world)
    print(", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "no clips")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    text = "train the U-Net or SyncNet (torchrun for many GPUs), fill caches, merge LoRA"
    train = sub.add_parser("train", help=text, description=text)
    kinds = train.add_subparsers(dest="what", required=True, metavar="unet|syncnet|cache|merge")
    helps = {
        "unet": "train the U-Net (stage 1 or 2) from an official U-Net config",
        "syncnet": "train StableSyncNet from an official SyncNet config",
        "cache": "precompute the Whisper features and SyncNet mels a run will read",
        "merge": "write a full official-layout U-Net checkpoint: a LoRA adapter merged into the U-Net it trained on",
    }
    for name, text in helps.items():
        p = kinds.add_parser(name, help=text, description=text)
        p.add_argument("--config", required=True, type=Path, help="official-format YAML config")
        if name != "merge":
            p.add_argument(
                "--data", default=None, help="training clips: a folder (searched recursively) or a file list"
            )
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.batch_size=4")
        if name == "merge":
            p.add_argument("--lora", required=True, type=Path, help="adapter file (checkpoint-<step>.lora.pt)")
            p.add_argument("--output", required=True, type=Path, help="the merged checkpoint to write (.pt)")
            p.add_argument(
                "--checkpoint", default=None, help="the U-Net the run started from (default: ckpt.resume_ckpt_path)"
            )
        elif name == "cache":
            p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: this one)")
        else:
            p.add_argument(
                "--output-dir", default=None, help="run folder (default: the config's data.train_output_dir)"
            )
            p.add_argument(
                "--resume",
                default=None,
                metavar="auto|PATH",
                help="continue from the newest checkpoint of the run folder, or from a checkpoint file",
            )
            p.add_argument("--device", default=None, help="cuda:N or cpu (default: LOCAL_RANK's GPU, else the CPU)")
            p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        p.set_defaults(run=run)
