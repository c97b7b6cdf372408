"""Checking values against a dataclass schema, the one mechanism behind every config section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from latentsync.errors import LatentSyncError

T = TypeVar("T")


class ConfigError(LatentSyncError, ValueError):
    """A config file or section that is missing, malformed, or has unknown or mistyped keys."""


def structured(schema: type[T], values: Mapping[str, Any] | DictConfig, source: str) -> T:
    """Check `values` against the dataclass `schema` and return a schema instance.

    Unknown keys and values of the wrong type raise ConfigError naming the key and `source`; keys left out take
    the schema's defaults (the official configs leave some out, e.g. `attn_blocks` in syncnet_25_pixel).
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"{source}: invalid key '{key}': {exc.msg if hasattr(exc, 'msg') else exc}") from None
    except ConfigError as exc:  # a value outside its choices (a schema's __post_init__)
        raise ConfigError(f"{source}: {exc}") from None
