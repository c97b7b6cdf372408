"""Write tiny random-weight models in the official formats, to try `latentsync infer` (and, with --training,
`latentsync train`) without the real weights.

    python scripts/make_tiny_models.py /tmp/tiny

    python scripts/make_tiny_models.py /tmp/tiny --training
    latentsync train unet --config /tmp/tiny/unet_tiny.yaml $(cat /tmp/tiny/train_unet.overrides) \\
        data.train_data_dir=CLIPS
    latentsync train syncnet --config /tmp/tiny/syncnet_tiny.yaml $(cat /tmp/tiny/train_syncnet.overrides) \\
        data.train_data_dir=CLIPS

prints the `latentsync infer` command that runs on them (CPU, no download, one step). The output mouth is noise:
this checks an installation and the plumbing, not lip sync.
"""

from __future__ import annotations

import argparse
import shlex

from latentsync.testing import write_tiny_models, write_tiny_training_models

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--training", action="store_true", help="also the models and overrides training loads")
    args = parser.parse_args()
    tiny = write_tiny_training_models(args.folder).inference if args.training else write_tiny_models(args.folder)
    # One denoising step: the mouth is noise whatever the steps, and 20 of them take minutes on a CPU.
    command = "latentsync infer --video talk.mp4 --audio speech.wav --output out.mp4 --steps 1".split()
    print(f"Tiny models written to {args.folder}. Try them on your own clip (mouth will be noise):\n")
    print("  " + shlex.join(command + tiny.cli_args()))
    if args.training:
        folder = shlex.quote(args.folder)
        print("\nand train them on aligned clips (see `latentsync preprocess`):\n")
        for kind in ("unet", "syncnet"):
            overrides = f"$(cat {folder}/train_{kind}.overrides)"
            print(f"  latentsync train {kind} --config {folder}/{kind}_tiny.yaml {overrides} data.train_data_dir=CLIPS")
