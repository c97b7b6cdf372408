"""Write tiny random-weight models in the official formats, to try `latentsync infer` (and, with --training,
`latentsync train`) without the real weights.

    python scripts/make_tiny_models.py /tmp/tiny
    latentsync infer --video talk.mp4 --audio speech.wav --output out.mp4 --device cpu --no-download \\
        --unet-config /tmp/tiny/unet_tiny.yaml --unet-checkpoint /tmp/tiny/unet_tiny.pt \\
        --whisper-checkpoint /tmp/tiny/whisper_tiny.pt --vae /tmp/tiny/vae

    python scripts/make_tiny_models.py /tmp/tiny --training
    latentsync train unet --config /tmp/tiny/unet_tiny.yaml $(cat /tmp/tiny/train_unet.overrides) \\
        data.train_data_dir=CLIPS
    latentsync train syncnet --config /tmp/tiny/syncnet_tiny.yaml $(cat /tmp/tiny/train_syncnet.overrides) \\
        data.train_data_dir=CLIPS

The output mouth is noise: this checks an installation and the plumbing, not lip sync.
"""

from __future__ import annotations

import argparse

from latentsync.testing import write_tiny_models, write_tiny_training_models

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--training", action="store_true", help="also the models and overrides training loads")
    args = parser.parse_args()
    print(write_tiny_training_models(args.folder) if args.training else write_tiny_models(args.folder))
