"""Official path-valued keys turned into what this package ships instead of files.

The official configs name their mouth mask by file (`mask_image_path: latentsync/utils/mask.png`); the package
draws the same masks in code (`faces.mask.fixed_mask`), keyed by the official file's stem.
"""

from __future__ import annotations

from pathlib import PurePath

from latentsync.config.schema import ConfigError

# The stems of the official mask images, in the order the official repository numbers them.
MASK_VARIANTS = ("mask", "mask2", "mask3", "mask4")


def mask_variant(mask_image_path: str) -> str:
    """The `fixed_mask` variant for an official `mask_image_path` (`.../mask3.png` -> "mask3")."""
    stem = PurePath(mask_image_path).stem
    if stem not in MASK_VARIANTS:
        raise ConfigError(
            f"mask_image_path {mask_image_path!r}: unknown mask; use one of the official mask files "
            f"({', '.join(v + '.png' for v in MASK_VARIANTS)}), which the package draws itself"
        )
    return stem
