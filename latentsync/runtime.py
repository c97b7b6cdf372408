"""Where and how models run: device and precision choice, GPU out-of-memory messages, stage timing, the
process's thread policy and the Ray connection. Inference, training, batch and data workers and benchmarks all take
these from here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from latentsync.errors import InvalidArgumentError, LatentSyncError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The user's choice, else CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use (CUDA_VISIBLE_DEVICES is respected): cuda:0, cuda:1, ..."""
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """The user's choice; else fp16 on CUDA cards with fast fp16 (compute capability 7 and up: Volta, Turing and
    newer), fp32 on older cards and on the CPU. bf16 is there on request (`--dtype bf16`, Ampere and newer)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        try:
            return DTYPES[dtype]
        except KeyError:
            raise InvalidArgumentError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}") from None
    if device.type != "cuda":
        return torch.float32
    major, _ = torch.cuda.get_device_capability(device)
    return torch.float16 if major >= 7 else torch.float32


class GPUMemoryError(LatentSyncError, RuntimeError):
    """The GPU ran out of memory; the message says what to try."""


@contextmanager
def explain_gpu_memory(device: torch.device, low_vram: bool) -> Iterator[None]:
    """Turn CUDA's out-of-memory error into a GPUMemoryError that names the card's size and the remedy."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        size = ""
        if device.type == "cuda":
            torch.cuda.empty_cache()  # what the failed run held goes back, for the next job of a server
            size = f" ({torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB card)"
        remedy = (
            "close other programs that use it, or use --model-version 1.5 (256 px crops)"
            if low_vram
            else "run with --low-vram (the VAE and Whisper wait on the CPU, the VAE decodes fewer frames at once)"
        )
        raise GPUMemoryError(f"the GPU ran out of memory{size}: {remedy}") from error


class StageTimer:
    """Wall-clock and calling-thread CPU seconds per named stage (a stage may be entered several times)."""

    def __init__(self, names: list[str] | tuple[str, ...] = ()) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)
        self.cpu_seconds: dict[str, float] = dict.fromkeys(names, 0.0)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - wall
            self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + time.thread_time() - cpu


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count once for this process (or worker) and return it.

    Called by entry points and by each data-preparation worker, never around single operations: the count is
    process-wide, so toggling it per call races with other threads. `None` keeps torch's choice unless
    `LATENTSYNC_THREADS` names a count (e.g. 1 per worker when several workers share the cores).
    """
    if threads is None:
        env = os.environ.get("LATENTSYNC_THREADS", "")
        if not env:
            return torch.get_num_threads()
        if not env.isdigit() or int(env) < 1:
            raise InvalidArgumentError(f"LATENTSYNC_THREADS={env!r}: give a positive number of threads")
        threads = int(env)
    if threads < 1:
        raise InvalidArgumentError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def cpu_threads(devices: Sequence[str]) -> int | None:
    """Torch threads per CPU worker of `devices` (one worker each), so that CPU workers share the cores instead of
    fighting over them; None when none is on the CPU."""
    on_cpu = sum(device == "cpu" for device in devices)
    return max(1, (os.cpu_count() or 1) // on_cpu) if on_cpu else None


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """The `ray` module, connected to the cluster at `address` (else RAY_ADDRESS, else a new local instance) unless
    this process already is; disconnected at the end when it was connected here."""
    try:
        import ray
    except ImportError:
        raise InvalidArgumentError('--ray needs Ray: pip install "latentsync[cluster]"') from None
    started_here = not ray.is_initialized()
    if started_here:
        local = address is None and not os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"include_dashboard": False} if local else {}  # a fresh local one: no dashboard
        ray.init(address=address, log_to_driver=False, configure_logging=False, **options)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
