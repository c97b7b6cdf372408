"""Shared fixtures only; helpers live in `latentsync.testing` and `tests/helpers`."""

from __future__ import annotations

from pathlib import Path

import pytest

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
