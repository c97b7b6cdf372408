"""The direction of imports inside the package, held by reading every module's import statements.

Lower layers never reach up: the stage packages know nothing of the pipelines, training, data preparation,
evaluation or the entry points; those never import the entry points; evaluation never imports training (training
and data preparation may use evaluation: validation's sync confidence, the sync filter); the server never imports
the CLI that starts it. Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import latentsync

PACKAGE = Path(latentsync.__file__).resolve().parent
STAGES = ("media", "faces", "audio", "models", "diffusion")
ABOVE_STAGES = ("pipelines", "train", "data", "eval", "cli", "server")
ENTRY_POINTS = ("cli", "server")

# layer -> the top-level parts of latentsync it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("constants", "errors", "runtime"), (*STAGES, *ABOVE_STAGES, "config")),
    "config": ABOVE_STAGES,
    **dict.fromkeys(STAGES, ABOVE_STAGES),
    "pipelines": ENTRY_POINTS,
    "data": ENTRY_POINTS,
    "train": ENTRY_POINTS,
    "eval": (*ENTRY_POINTS, "train"),
    "server": ("cli",),  # the CLI starts the server, never the other way round
}


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of latentsync (`faces`, `config`, ...) that the module at `path` imports."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module if path.name == "__init__.py" else module[:-1]
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            # `from latentsync import faces` and `from . import x` name the part in the imported names
            names = [target + [alias.name] for alias in node.names] if len(target) < 2 else [target]
        else:
            continue
        parts.update(name[1] for name in names if len(name) > 1 and name[0] == "latentsync")
    return parts


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if layer_of(p) in FORBIDDEN)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path) -> None:
    wrong = imported_parts(path) & set(FORBIDDEN[layer_of(path)])
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer_of(path)}) imports latentsync.{', '.join(sorted(wrong))}"


def test_the_walk_sees_relative_absolute_and_lazy_imports(tmp_path: Path) -> None:
    faces = PACKAGE / "faces" / "track.py"
    assert {"errors", "faces"} <= imported_parts(faces)
    assert "pipelines" in imported_parts(PACKAGE / "cli" / "options.py")  # inside a function
    assert "models" in imported_parts(PACKAGE / "pipelines" / "lipsync.py")


def test_the_command_lines_parser_does_not_import_torch() -> None:
    """`latentsync --help` and argument mistakes answer at once: torch loads only when a command runs."""
    import subprocess
    import sys

    probe = "import sys; from latentsync.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
