"""Where data preparation's sync and quality models run: in each worker, in a scoring process per device, or in Ray
actors, they load once per process or actor and the manifest is the same every way. Real model files (random
weights in the official formats) on three aligned clips of the demo videos."""

from __future__ import annotations

import json
import shutil
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.evaluation import write_syncnet_v2
from helpers.preprocess import clip, write
from test_hyperiqa import write_koniq

from latentsync.data.preprocess import Settings, run_preprocess
from latentsync.data.preprocess.runner import _dispatch
from latentsync.data.preprocess.scorers import LocalScorers, PipeRoute
from latentsync.data.preprocess.video import filters
from latentsync.models.loading import CheckpointError

REPO = Path(__file__).resolve().parents[1]
# Random weights score anything: keep every clip, so that both models see all three.
LENIENT = Settings(sync_min_conf=0.0, sync_max_offset=15, quality_min=-100.0)
ALL_LOADED_ONCE = {"sync loads": 1, "quality loads": 1, "sync clips": 3, "quality clips": 3}


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def raw(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo clip (one 55-frame segment) and two shots spliced (two 52-frame segments)."""
    folder = tmp_path_factory.mktemp("raw")
    one, two = (clip(assets / f"demo{i}_video.mp4", 2.2) for i in (1, 2))
    write(folder / "demo1.mp4", *one)
    write(folder / "spliced.mp4", one[0][-52:] + two[0][:52], np.concatenate([one[1][-52 * 640 :], two[1][: 52 * 640]]))
    return folder


@pytest.fixture(scope="module")
def aux(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("aux")
    write_syncnet_v2(folder / "syncnet_v2.model")
    write_koniq(folder / "koniq_pretrained.pkl")
    return folder


@pytest.fixture(scope="module")
def aligned(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT_DIR with stages 1-5 done (no weights yet): the runs below only score, the part they differ in."""
    out = tmp_path_factory.mktemp("aligned") / "out"
    run_preprocess(raw, out, LENIENT, out.parent / "no-aux", progress=False)
    return out


@pytest.fixture(scope="module")
def with_workers(raw: Path, aligned: Path, aux: Path) -> list[dict]:
    """`--workers 2` on a machine without GPU: each worker process loads the models and scores its own clips. The
    manifest the other ways of running must give, its scores to 1e-4: a model's float sums change in the last digits
    with its thread count (a worker has one, a CPU scorer the cores)."""
    out = shutil.copytree(aligned, aligned.parent / "workers")
    summary = run_preprocess(raw, out, LENIENT, aux, workers=2, progress=False)
    assert summary.kept_clips == 3 and summary.scorers == {}
    lines = manifest_lines(out)
    assert [(s["state"], "score" in s["quality"]) for r in lines for s in r["segments"]] == [("kept", True)] * 3
    for segment in (s for r in lines for s in r["segments"]):
        for scores in (segment["sync"], segment["quality"]):
            scores.update({k: pytest.approx(v, abs=1e-4) for k, v in scores.items() if isinstance(v, float)})
    return lines


@pytest.mark.slow
def test_a_single_worker_loads_each_model_once_for_all_its_clips(
    raw: Path, aligned: Path, aux: Path, with_workers: list[dict], tmp_path: Path
) -> None:
    out = shutil.copytree(aligned, tmp_path / "out")
    before = [stage.loads for stage in filters(str(aux))]
    assert run_preprocess(raw, out, LENIENT, aux, progress=False).scorers == {}  # in this process, as each worker
    assert (before, [stage.loads for stage in filters(str(aux))]) == ([0, 0], [1, 1])
    assert manifest_lines(out) == with_workers


@pytest.mark.slow
def test_a_scoring_process_per_device_loads_the_models_once_and_gives_the_same_manifest(
    raw: Path, aligned: Path, aux: Path, with_workers: list[dict], tmp_path: Path
) -> None:
    out = shutil.copytree(aligned, tmp_path / "out")
    summary = run_preprocess(raw, out, LENIENT, aux, workers=2, devices=["cpu"], progress=False)
    assert summary.scorers == {"cpu#0": ALL_LOADED_ONCE}
    assert manifest_lines(out) == with_workers


@pytest.mark.slow
def test_ray_actors_load_the_models_once_and_give_the_manifest_of_local_workers(
    raw: Path, aligned: Path, aux: Path, with_workers: list[dict], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}}
    )
    try:
        out = shutil.copytree(aligned, tmp_path / "ray")
        summary = run_preprocess(raw, out, LENIENT, aux, use_ray=True, progress=False)
    finally:
        ray.shutdown()
    assert summary.scorers == {"ray-cpu#0": ALL_LOADED_ONCE}
    assert manifest_lines(out) == with_workers


class FakeRay:
    """Ray's `wait`/`get` over tasks that finish in submission order, noting how many were in flight."""

    def __init__(self) -> None:
        self.in_flight: list[int] = []

    def wait(self, refs: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
        self.in_flight.append(len(refs))
        return refs[:1], refs[1:]

    def get(self, ref: int) -> dict:
        return {"input": ref}


def test_ray_keeps_a_bounded_number_of_tasks_in_flight_each_with_the_least_busy_actor() -> None:
    fake, routes = FakeRay(), []

    class Task:
        @staticmethod
        def remote(job: int, route: Any) -> int:
            routes.append(route.actor)
            return job

    records = list(_dispatch(fake, Task, list(range(20)), {"a": "actor a", "b": "actor b"}, limit=4))
    assert [r["input"] for r in records] == list(range(20))
    assert max(fake.in_flight) == 4
    assert routes[:4] == ["actor a", "actor b"] * 2 and routes.count("actor a") == routes.count("actor b") == 10


@pytest.mark.slow
def test_a_scorer_error_reaches_the_worker_as_itself_and_a_dead_scorer_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "koniq_pretrained.pkl").write_bytes(b"not a state dict")
    scorers = LocalScorers(get_context("forkserver"), str(tmp_path), ["cpu"], workers=1)
    try:
        route = PipeRoute(scorers.connections[scorers.slots.get(timeout=10)])
        with pytest.raises(CheckpointError, match="koniq_pretrained.pkl"):  # as when loaded in the worker itself
            route("quality", tmp_path / "clip.mp4")
        process, _ = scorers.scorers["cpu#0"]
        process.kill()
        process.join(timeout=30)
        with pytest.raises(RuntimeError, match="the scoring process ended"):
            route("quality", tmp_path / "clip.mp4")
    finally:
        assert scorers.close() == {}  # nothing to report from a dead scorer
