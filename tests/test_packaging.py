"""A built wheel carries the package's data files, and the installed (non-editable) package finds its configs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "latentsync"

# Run by the installed copy from a folder that is not a clone: README's `configs/...` paths, the defaults that read
# packaged configs (infer's U-Net config per release, the U-Net config's SyncNet config, the scheduler).
INSTALLED_CHECK = """
import sys
from pathlib import Path

import latentsync
from latentsync.config import bundled_config, config_file, load_config
from latentsync.config.files import UNetDataConfig
from latentsync.diffusion.schedulers import load_scheduler
from latentsync.hub import VERSIONS

assert Path(latentsync.__file__).is_relative_to(sys.argv[1]), latentsync.__file__
assert not Path("configs").exists()
assert load_config("configs/unet/stage2.yaml").model.cross_attention_dim == 384
assert load_config("configs/syncnet/syncnet_16_latent.yaml").model.audio_encoder
for release in VERSIONS.values():
    assert load_config(bundled_config(release.unet_config)).data.resolution == release.resolution
assert config_file(UNetDataConfig().syncnet_config_path).is_relative_to(sys.argv[1])
load_scheduler()
print("ok")
"""

BUILD = "import sys; from setuptools import build_meta; build_meta.build_wheel(sys.argv[1])"


def package_files() -> list[str]:
    """Every file of the source package, as a wheel names it (`latentsync/configs/unet/stage2.yaml`)."""
    files = (p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(str(p.relative_to(REPO)) for p in files)


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the project (building in the clone would leave build/ and egg-info behind)."""
    src, out = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(PACKAGE, src / "latentsync", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    built = subprocess.run(
        [sys.executable, "-c", BUILD, out],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("latentsync-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_carries_every_package_file_and_the_installed_package_finds_its_configs(tmp_path) -> None:
    assert (REPO / "configs").resolve() == (PACKAGE / "configs").resolve()  # a clone's configs/ is the packaged copy
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [f for f in package_files() if f not in names]
        assert not missing, f"left out of the wheel: {missing}"
        assert "latentsync/configs/unet/stage2_512.yaml" in names and "latentsync/server/static/index.html" in names
        assert not [n for n in names if n.startswith(("tests/", "configs/", "scripts/"))]
        installed = tmp_path / "site"
        archive.extractall(installed)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(installed), "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", INSTALLED_CHECK, str(installed)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_configs_paths_resolve_to_the_packaged_copy_outside_a_clone(tmp_path, monkeypatch) -> None:
    from latentsync.config import CONFIG_DIR, ConfigError, config_file, load_config

    monkeypatch.chdir(tmp_path)
    assert config_file("configs/unet/stage2.yaml") == CONFIG_DIR / "unet" / "stage2.yaml"
    own = tmp_path / "configs" / "unet" / "stage2.yaml"  # a user's edited copy at the same path wins
    own.parent.mkdir(parents=True)
    own.write_text((CONFIG_DIR / "unet" / "stage2.yaml").read_text().replace("batch_size: 1", "batch_size: 3"))
    assert config_file("configs/unet/stage2.yaml") == Path("configs/unet/stage2.yaml")
    assert load_config("configs/unet/stage2.yaml").data.batch_size == 3
    assert config_file("unet/stage2.yaml") == Path("unet/stage2.yaml")  # only the clone's own spelling
    with pytest.raises(ConfigError, match=r"not found: configs/unet/stage9.yaml \(the packaged ones: .*unet/stage2"):
        load_config("configs/unet/stage9.yaml")
