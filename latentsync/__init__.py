"""latentsync: audio-conditioned latent-diffusion lip sync compatible with the official LatentSync checkpoints."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# diffusers and peft import bitsandbytes whenever it is installed (`latentsync[lowmem]`), and on CPUs with AVX512-BF16
# its import warns that an optional 4-bit matmul kernel could not be fetched: nothing we use, so not shown.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

if TYPE_CHECKING:
    from latentsync.pipelines.lipsync import LipsyncPipeline


def __getattr__(name: str) -> Any:
    # The pipeline pulls in torch, diffusers and dlib; `latentsync --version` should not wait for them.
    if name == "LipsyncPipeline":
        from latentsync.pipelines.lipsync import LipsyncPipeline

        return LipsyncPipeline
    raise AttributeError(f"module 'latentsync' has no attribute {name!r}")


__all__ = ["LipsyncPipeline", "__version__"]
