"""Write tiny random-weight models in the official formats, to try `latentsync infer` without the real weights.

    python scripts/make_tiny_models.py /tmp/tiny

prints the `latentsync infer` command that runs on them (CPU, no download). The output mouth is noise: this checks
an installation and the plumbing, not lip sync.
"""

from __future__ import annotations

import shlex
import sys

from latentsync.testing import write_tiny_models

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tiny = write_tiny_models(sys.argv[1])
    command = ["latentsync", "infer", "--video", "talk.mp4", "--audio", "speech.wav", "--output", "out.mp4"]
    print(f"Tiny models written to {sys.argv[1]}. Try them on your own clip (mouth will be noise):\n")
    print("  " + shlex.join(command + tiny.cli_args()))
