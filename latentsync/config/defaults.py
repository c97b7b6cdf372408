"""The official inference settings, in one place: the CLI, the server's request schema, the web page (through
`/health`) and `LipsyncOptions` all read them, so changing one here changes every entry point."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from latentsync.constants import CLIP_FRAMES


@dataclass(frozen=True)
class InferenceDefaults:
    steps: int = 20  # DDIM steps
    guidance_scale: float = 1.5  # audio classifier-free guidance; 1 turns it off
    seed: int = 1247
    batch_frames: int = CLIP_FRAMES  # frames per diffusion chunk
    sync_mode: str = "cut_off"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


INFERENCE = InferenceDefaults()
