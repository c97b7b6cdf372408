"""The app factory: one server instance on one data dir, with one GPU worker per loaded pipeline."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from latentsync import __version__
from latentsync.server.lock import DataDirLock
from latentsync.server.middleware import BodyLimit, add_error_handlers
from latentsync.server.routes import MAX_JSON_BYTES, UPLOAD_ROUTE, add_routes, too_large
from latentsync.server.services import Services
from latentsync.server.settings import ServerSettings
from latentsync.server.worker import Pipeline

logger = logging.getLogger(__name__)

MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around an upload's bytes


def create_app(
    settings: ServerSettings,
    pipeline: Pipeline | Sequence[Pipeline],
    devices: Sequence[str] = (),
    address: str = "",
) -> FastAPI:
    """The API and page around loaded pipelines (one per device, each with its GPU worker); the workers start and
    stop with the app. The data dir is locked from here on (DataDirBusy names the server holding it)."""
    pipelines = list(pipeline) if isinstance(pipeline, Sequence) else [pipeline]
    names = [f"worker-{device}" for device in devices] or [f"worker{i}" for i in range(len(pipelines))]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(settings.data_dir.resolve())
    lock.acquire(address)
    try:
        services = Services(settings, pipelines, names)
    except BaseException:
        lock.release()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            services.start()
            yield
        finally:
            services.stop()
            lock.release()

    app = FastAPI(
        title="LatentSync server",
        version=__version__,
        description="Lip-sync jobs in the hosted services' API shapes, run on this machine's GPU.",
        lifespan=lifespan,
        docs_url=None,  # served by routes.py from the swagger-ui-bundle package: GPU boxes are often offline
        openapi_url=None,  # served by routes.py in the 3.0 form that bundle reads
    )
    app.state.services = services
    add_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        limits={UPLOAD_ROUTE: settings.max_upload_bytes + MULTIPART_SLACK},
        default=MAX_JSON_BYTES,
        message=too_large(settings.max_upload_bytes),
    )
    add_routes(app, services)
    return app


def serve(
    settings: ServerSettings,
    pipeline: Pipeline | Sequence[Pipeline],
    host: str = "127.0.0.1",
    port: int = 8000,
    devices: Sequence[str] = (),
) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings, pipeline, devices, address=f"{host}:{port}"), host=host, port=port)
