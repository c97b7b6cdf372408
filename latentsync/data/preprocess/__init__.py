"""`latentsync preprocess`: raw talking videos -> aligned, in-sync R x R training clips with 16 kHz audio.

One decode and one encode per video; every input's and segment's fate is recorded in a manifest in OUT_DIR, which
also makes runs resumable (see `runner`).
"""

from .runner import run_preprocess
from .settings import Settings

__all__ = ["Settings", "run_preprocess"]
