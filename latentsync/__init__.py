"""latentsync: audio-conditioned latent-diffusion lip sync compatible with the official LatentSync checkpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from latentsync.pipelines.lipsync import LipsyncPipeline


def __getattr__(name: str) -> Any:
    # The pipeline pulls in torch, diffusers and dlib; `latentsync --version` should not wait for them.
    if name == "LipsyncPipeline":
        from latentsync.pipelines.lipsync import LipsyncPipeline

        return LipsyncPipeline
    raise AttributeError(f"module 'latentsync' has no attribute {name!r}")


__all__ = ["LipsyncPipeline", "__version__"]
