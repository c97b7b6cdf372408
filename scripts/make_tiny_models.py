"""Write tiny random-weight models in the official formats, to try `latentsync infer` without the real weights.

    python scripts/make_tiny_models.py /tmp/tiny
    latentsync infer --video talk.mp4 --audio speech.wav --output out.mp4 --device cpu --no-download \\
        --unet-config /tmp/tiny/unet_tiny.yaml --unet-checkpoint /tmp/tiny/unet_tiny.pt \\
        --whisper-checkpoint /tmp/tiny/whisper_tiny.pt --vae /tmp/tiny/vae

The output mouth is noise: this checks an installation and the plumbing, not lip sync.
"""

from __future__ import annotations

import sys

from latentsync.testing import write_tiny_models

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(write_tiny_models(sys.argv[1]))
