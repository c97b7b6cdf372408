"""Steadier faces: the anchors hold still where the head does, follow it where it moves, and cuts stay cuts."""

from __future__ import annotations

import numpy as np
import pytest

from latentsync.faces.smooth import steady_anchors

FACE = np.array([[500.0, 600.0], [600.0, 600.0], [550.0, 670.0]])  # eyebrows 100 px apart, as on the demo clips


def shake(truth: np.ndarray, seed: int = 0, spikes: int = 6) -> np.ndarray:
    """The truth as a detector reports it: ~1.5 px of noise, whole pixels, and a few jumps of tens of pixels."""
    rng = np.random.default_rng(seed)
    noisy = truth + rng.normal(0, 1.2, truth.shape)
    where = rng.choice(np.arange(10, len(truth) - 10), spikes, replace=False)
    noisy[where] += rng.choice([-1, 1], (spikes, 3, 2)) * rng.uniform(15, 40, (spikes, 3, 2))
    return np.round(noisy)


def frame_steps(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(points, axis=0), axis=-1).max(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_still_head_holds_still(seed) -> None:
    truth = np.repeat(FACE[None], 100, axis=0)
    steady = steady_anchors(shake(truth, seed))
    assert frame_steps(steady).max() < 1.0  # raw: jumps of up to ~40 px
    assert np.linalg.norm(steady - truth, axis=-1).max() < 2.0


def test_a_moving_head_is_followed_without_lag() -> None:
    t = np.arange(150) / 25
    turn = np.clip((t - 2) / 0.5, 0, 1)  # a 150 px head turn in half a second, then still again
    truth = FACE[None] + (150 * (3 * turn**2 - 2 * turn**3))[:, None, None] * np.array([1.0, 0.2])
    steady = steady_anchors(shake(truth, spikes=0))
    error = np.linalg.norm(steady - truth, axis=-1).max(axis=1)
    assert error.mean() < 1.0 and error.max() < 6.0  # at most a few px at the turn's sharpest corners
    moving = slice(52, 60)  # mid-turn, ~11 px a frame: no trailing behind
    signed = ((steady - truth)[moving, :, 0]).mean()
    assert abs(signed) < 1.0


def test_a_cut_and_frames_without_a_face_are_not_smoothed_across() -> None:
    truth = np.repeat(FACE[None], 60, axis=0)
    truth[30:] += [200.0, 50.0]  # another shot: the face is elsewhere from frame 30
    raw = shake(truth, spikes=0)
    raw[45:48] = np.nan
    steady = steady_anchors(raw)
    assert np.isnan(steady[45:48]).all() and np.isfinite(steady[:45]).all() and np.isfinite(steady[48:]).all()
    assert np.linalg.norm(steady - truth, axis=-1)[np.isfinite(steady[:, 0, 0])].max() < 2.0


def test_short_and_empty_tracks() -> None:
    assert steady_anchors(np.zeros((0, 3, 2))).shape == (0, 3, 2)
    one = FACE[None] + 0.4
    assert np.allclose(steady_anchors(one), one)
    with pytest.raises(ValueError, match="shape"):
        steady_anchors(np.zeros((4, 68, 2)))
