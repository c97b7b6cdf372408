"""The inference defaults live in one place and every entry point shows the same ones."""

from __future__ import annotations

import dataclasses

from latentsync.cli import build_parser
from latentsync.config.defaults import INFERENCE
from latentsync.pipelines.lipsync import LipsyncOptions
from latentsync.server.schemas import LipsyncRequest


def test_cli_server_and_pipeline_share_the_inference_defaults() -> None:
    args = build_parser().parse_args(["infer", "--video", "v.mp4", "--audio", "a.wav", "--output", "o.mp4"])
    request = LipsyncRequest(video="http://x/v.mp4", audio="http://x/a.wav")
    options = LipsyncOptions()
    for name, value in INFERENCE.as_dict().items():
        assert getattr(args, name) == value, f"--{name.replace('_', '-')}"
        assert getattr(options, name) == value, f"LipsyncOptions.{name}"
        if name != "batch_frames":  # the hosted API shapes have no batch size
            assert getattr(request, name) == value, f"LipsyncRequest.{name}"


def test_the_defaults_are_the_official_inference_settings() -> None:
    assert dataclasses.astuple(INFERENCE) == (20, 1.5, 1247, 16, "cut_off")


def test_the_server_tells_the_web_page_its_defaults(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from latentsync.server import ServerSettings
    from latentsync.server.app import create_app

    client = TestClient(create_app(ServerSettings(data_dir=tmp_path), pipeline=lambda *a, **k: None))
    assert client.get("/health").json()["defaults"] == INFERENCE.as_dict()


def test_the_pipeline_call_spells_out_every_option_with_its_default() -> None:
    import inspect

    from latentsync.pipelines.lipsync import LipsyncPipeline

    keywords = {
        name: p.default
        for name, p in inspect.signature(LipsyncPipeline.__call__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    assert keywords == {f.name: f.default for f in dataclasses.fields(LipsyncOptions)}
