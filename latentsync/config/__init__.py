"""Loading, validating, overriding and saving the official YAML configs.

A user's own copy of an official config must work unchanged, and a typo in it must not silently fall back to
a default: every section and key is checked against a schema (`files.py`, and the model schemas beside their
models), and errors name the key and the file. Command-line overrides (`data.batch_size=2`) get the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from latentsync.atomic import atomic_path
from latentsync.config.files import (
    AudioFileConfig,
    AudioMelConfig,
    OptimizerConfig,
    SyncNetCkptConfig,
    SyncNetDataConfig,
    SyncNetFileConfig,
    SyncNetOptimizerConfig,
    SyncNetRunConfig,
    UNetCkptConfig,
    UNetDataConfig,
    UNetFileConfig,
    UNetRunConfig,
)
from latentsync.config.resolve import MASK_VARIANTS, mask_variant
from latentsync.config.schema import ConfigError, structured
from latentsync.models.syncnet_config import SyncNetEncoderConfig, SyncNetModelConfig
from latentsync.models.unet_config import DOWN_TYPES, UP_TYPES, MotionModuleConfig, UNetConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def _schema_for(raw: DictConfig) -> type:
    if "audio" in raw and "model" not in raw:
        return AudioFileConfig
    model = raw.get("model")
    if isinstance(model, DictConfig) and ("audio_encoder" in model or "visual_encoder" in model):
        return SyncNetFileConfig
    return UNetFileConfig


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load an official-format YAML config (U-Net, SyncNet or audio), validated, as a typed OmegaConf node.

    The kind is recognised from its sections. `overrides` are OmegaConf dot-list entries (`data.batch_size=2`)
    applied on top and checked like the file. The result keeps the official attribute access
    (`cfg.model.block_out_channels`, `cfg.data.resolution`, ...) and refuses assignments of unknown keys or
    wrong types.
    """
    path = config_file(path)
    if not path.is_file():
        packaged = f" (the packaged ones: configs/{', configs/'.join(packaged_configs())})" if _in_configs(path) else ""
        raise ConfigError(f"config file not found: {path}{packaged}")
    try:
        raw: Any = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001  yaml scanner/parser errors of any kind
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    source = str(path)
    if overrides:
        bad = [item for item in overrides if "=" not in item or not item.split("=", 1)[0].strip()]
        if bad:
            raise ConfigError(f"overrides must be key=value (e.g. data.batch_size=2), got {bad}")
        try:
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{path}: bad override in {list(overrides)}: {exc}") from None
        source = f"{path} with overrides {' '.join(overrides)}"
    schema = _schema_for(raw)
    unknown = [k for k in raw if k not in {f.name for f in fields(schema)}]
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}")
    config: Any = structured(schema, raw, source)
    if isinstance(config, UNetFileConfig):
        try:
            mask_variant(config.data.mask_image_path)
        except ConfigError as exc:
            raise ConfigError(f"{source}: data.{exc}") from None
    return OmegaConf.structured(config)


def save_config(cfg: DictConfig | Any, path: str | Path) -> Path:
    """Write `cfg` (a loaded config or a schema dataclass) as YAML that `load_config` reads back equal.

    Written to a temporary name and renamed, so a crash never leaves half a config beside a checkpoint.
    """
    path = Path(path)
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    with atomic_path(path) as temp:
        temp.write_text(OmegaConf.to_yaml(node, resolve=True))
    return path


def bundled_config(name: str) -> Path:
    """Path of a config shipped with the package, e.g. `unet/stage2_512.yaml` or `scheduler_config.json`."""
    path = CONFIG_DIR / name
    if not path.is_file():
        raise ConfigError(f"no bundled config {name!r}; available: {', '.join(packaged_configs())}")
    return path


def packaged_configs() -> list[str]:
    """The configs shipped with the package, relative to its configs/ (`unet/stage2.yaml`, ...)."""
    return sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*") if p.is_file())


def _in_configs(path: Path) -> bool:
    """Whether `path` is written as in a clone, relative and under `configs/`."""
    return not path.is_absolute() and len(path.parts) > 1 and path.parts[0] == "configs"


def config_file(path: str | Path) -> Path:
    """`path`, or the packaged copy of an official config named as in a clone (`configs/unet/stage2.yaml`).

    README's commands use the clone's `configs/` paths (a link to the package's copy); an installed package run
    from any other folder finds the same files. A file that exists at `path` always wins.
    """
    path = Path(path)
    if path.is_file() or not _in_configs(path):
        return path
    packaged = CONFIG_DIR.joinpath(*path.parts[1:])
    return packaged if packaged.is_file() else path


def to_dict(node: Any) -> Any:
    """Plain Python containers from an OmegaConf node or a (nested) dataclass."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if is_dataclass(node):
        return OmegaConf.to_container(OmegaConf.structured(node), resolve=True)
    return node


__all__ = [
    "CONFIG_DIR",
    "DOWN_TYPES",
    "MASK_VARIANTS",
    "UP_TYPES",
    "AudioFileConfig",
    "AudioMelConfig",
    "ConfigError",
    "MotionModuleConfig",
    "OptimizerConfig",
    "SyncNetCkptConfig",
    "SyncNetDataConfig",
    "SyncNetEncoderConfig",
    "SyncNetFileConfig",
    "SyncNetModelConfig",
    "SyncNetOptimizerConfig",
    "SyncNetRunConfig",
    "UNetCkptConfig",
    "UNetConfig",
    "UNetDataConfig",
    "UNetFileConfig",
    "UNetRunConfig",
    "bundled_config",
    "config_file",
    "load_config",
    "mask_variant",
    "packaged_configs",
    "save_config",
    "structured",
    "to_dict",
]
