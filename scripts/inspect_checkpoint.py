"""Check a U-Net checkpoint against a config before a long run: which keys fit, which do not, and why.

    python scripts/inspect_checkpoint.py checkpoints/v1.6/latentsync_unet.pt [--config configs/unet/stage2_512.yaml]

Builds the model on the `meta` device (no memory for weights), reads the checkpoint, and prints the load report:
missing keys (they would keep their initial values), unexpected keys, and shape mismatches. Exits 1 when anything
is off. (A stage-1 checkpoint in a stage-2 config lacks only the motion modules, which is fine.)
"""

from __future__ import annotations

import argparse
import sys

import torch

from latentsync.config import bundled_config, load_config, to_dict
from latentsync.models.loading import fit_report, read_checkpoint
from latentsync.models.unet import UNet3DConditionModel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--config", default=str(bundled_config("unet/stage2_512.yaml")))
    args = parser.parse_args()

    cfg = load_config(args.config)
    state_dict, extra = read_checkpoint(args.checkpoint)
    with torch.device("meta"):
        model = UNet3DConditionModel.from_config(to_dict(cfg.model))
    report = fit_report(model, state_dict, args.checkpoint)
    print(f"{args.checkpoint}: {len(state_dict)} tensors, global_step {extra.get('global_step')}")
    print(f"config {args.config}: {len(model.state_dict())} keys")
    print(report.summary(limit=50))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
