"""Shared fixtures only; helpers live in `latentsync.testing` and `tests/helpers`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from latentsync.testing import ASSETS, GOLDEN, SPEC


@pytest.fixture(scope="session")
def assets() -> Path:
    if not ASSETS.is_dir():
        pytest.fail(f"shared assets not found at {ASSETS}; set LATENTSYNC_SHARED to the folder holding assets/")
    return ASSETS


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    return SPEC


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


from helpers.training import aligned_clips, tiny_training  # noqa: E402, F401  (the training tests' fixtures)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for a test: tiny models and many small passes run far faster so, above all on busy cores
    (threads waiting on each other cost up to 10x). Modules ask for it with `pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
