"""Device, precision, out-of-memory message, stage timing and thread policy: the runtime choices in one place."""

from __future__ import annotations

import threading

import pytest
import torch

from latentsync.errors import LatentSyncError
from latentsync.runtime import (
    GPUMemoryError,
    StageTimer,
    configure_threads,
    explain_gpu_memory,
    pick_device,
    pick_dtype,
)


def test_the_users_device_and_dtype_win_and_the_cpu_computes_in_fp32() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(LatentSyncError, match="fp16, bf16"):
        pick_dtype(torch.device("cpu"), "fp64")


def test_out_of_memory_becomes_an_error_naming_the_remedy() -> None:
    with pytest.raises(GPUMemoryError, match="--low-vram"):
        with explain_gpu_memory(torch.device("cpu"), low_vram=False):
            raise torch.OutOfMemoryError("CUDA out of memory")


def test_stage_timer_adds_up_repeated_stages() -> None:
    timer = StageTimer(["decode"])
    for _ in range(2):
        with timer("decode"):
            sum(range(10_000))
    assert set(timer.seconds) == set(timer.cpu_seconds) == {"decode"} and timer.seconds["decode"] > 0


def test_thread_policy_is_set_once_and_checked(monkeypatch) -> None:
    def in_thread() -> int:  # torch's count is per thread: set the policy where the work runs
        out: list[int] = []
        worker = threading.Thread(target=lambda: out.append((configure_threads(), torch.get_num_threads())[1]))
        worker.start()
        worker.join()
        return out[0]

    threads = torch.get_num_threads()
    monkeypatch.setenv("LATENTSYNC_THREADS", "1")
    try:
        assert in_thread() == 1
    finally:
        torch.set_num_threads(threads)  # setting it anywhere also sets what later threads start with
    monkeypatch.setenv("LATENTSYNC_THREADS", "many")
    with pytest.raises(LatentSyncError, match="LATENTSYNC_THREADS"):
        configure_threads()
    monkeypatch.delenv("LATENTSYNC_THREADS")
    assert configure_threads() == torch.get_num_threads()
