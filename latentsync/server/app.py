"""The HTTP API: the hosted lip-sync services' request and response shapes, served from the user's own machine.

Every answer under /api/v3, errors included, is the envelope `{"code", "message", "data"}`; submitting returns
at once with a `created` job, which the one worker thread runs in order while clients poll its result URL.
"""

from __future__ import annotations

import hmac
import logging
import mimetypes
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Literal

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from latentsync import __version__
from latentsync.config.defaults import INFERENCE
from latentsync.media.sync import SyncMode
from latentsync.server.fetch import FetchError, check_scheme
from latentsync.server.jobs import Job, JobStore
from latentsync.server.settings import MB, ServerSettings
from latentsync.server.storage import UPLOADS_ROUTE, Storage, UnknownFile
from latentsync.server.worker import Pipeline, Worker

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
API = "/api/v3"
MAX_JSON_BYTES = 1 * MB  # any request but an upload
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around an upload's bytes

# The hosted models whose submit endpoints this server answers; all of them run the loaded LatentSync model.
MODELS = {
    "bytedance/latentsync": "ByteDance LatentSync",
    "bytedance/lipsync/audio-to-video": "ByteDance LipSync, audio to video",
    "sync/lipsync-1.9.0-beta": "sync. lipsync 1.9.0 beta",
    "sync/lipsync-3": "sync. lipsync-3",
}


# --- request and response shapes (they make the OpenAPI page at /docs) ----------------------------------------
class LipsyncRequest(BaseModel):
    """The hosted APIs' fields, plus this server's own knobs (optional on every endpoint)."""

    video: str = Field(description="http(s) URL of the video, or a download_url from the upload endpoint")
    audio: str = Field(description="http(s) URL of the speech (any audio, or a video's sound), or an upload URL")
    sync_mode: SyncMode = Field(
        INFERENCE.sync_mode, description="when the lengths differ: cut_off, loop, bounce, silence or remap"
    )
    steps: int = Field(INFERENCE.steps, ge=1, le=100, description="DDIM steps")
    guidance_scale: float = Field(
        INFERENCE.guidance_scale, ge=1.0, le=10.0, description="audio guidance; 1 turns it off"
    )
    seed: int = Field(INFERENCE.seed, ge=0, le=2**63 - 1, description="the same seed gives the same output")


class Urls(BaseModel):
    get: str


class Timings(BaseModel):
    inference: int = Field(description="milliseconds the lip sync took (0 until completed)")


class Prediction(BaseModel):
    id: str
    model: str
    outputs: list[str] = Field(description="the result video's URL once completed")
    urls: Urls
    has_nsfw_contents: list[bool] = Field(description="always empty: this server runs no content filter")
    status: Literal["created", "processing", "completed", "failed"]
    created_at: str
    error: str
    timings: Timings
    progress: float = Field(description="0 to 1; 1 when completed")
    jobs_ahead: int = Field(description="jobs that run before this waiting one (0 unless created)")


class PredictionResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Prediction


class Upload(BaseModel):
    type: str = Field(description="video, audio, image or file")
    download_url: str = Field(description="pass it as `video` or `audio` of a job")
    filename: str
    size: int


class UploadResponse(BaseModel):
    code: int = 200
    message: str = "success"
    data: Upload


class ErrorResponse(BaseModel):
    code: int
    message: str
    data: None = None


ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 413)}


# --- the app ---------------------------------------------------------------------------------------------------
def create_app(settings: ServerSettings, pipeline: Pipeline) -> FastAPI:
    """The API and page around a loaded `pipeline`; the worker starts and stops with the app."""
    storage = Storage(settings.data_dir)
    store = JobStore(storage.database)
    worker = Worker(store, storage, pipeline, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        requeued, failed = store.recover()
        if requeued or failed:
            logger.info("jobs cut off by the last stop: %d run again, %d failed", requeued, failed)
        worker.start()
        yield
        worker.stop()

    app = FastAPI(
        title="LatentSync server",
        version=__version__,
        description="Lip-sync jobs in the hosted services' API shapes, run on this machine's GPU.",
        lifespan=lifespan,
        docs_url=None,  # served below from the swagger-ui-bundle package: GPU boxes are often offline
    )
    _add_error_handlers(app)
    upload_route = f"{API}/media/upload/binary"
    app.add_middleware(
        BodyLimit,
        limits={upload_route: settings.max_upload_bytes + MULTIPART_SLACK},
        default=MAX_JSON_BYTES,
        message=_too_large(settings),
    )

    bearer = HTTPBearer(auto_error=False, description="the server's LATENTSYNC_API_KEY, when it has one")

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.api_key is None:
            return
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), settings.api_key.encode()):
            raise HTTPException(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key "
                "the server was started with (LATENTSYNC_API_KEY)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    api = APIRouter(prefix=API, dependencies=[Depends(authorize)], responses=ERRORS)

    def envelope(job: Job, request: Request) -> PredictionResponse:
        base = str(request.base_url).rstrip("/")
        output = f"{base}{API}/predictions/{job.id}/output.mp4"
        return PredictionResponse(
            data=Prediction(
                id=job.id,
                model=job.model,
                outputs=[output] if job.status == "completed" else [],
                urls=Urls(get=f"{base}{API}/predictions/{job.id}/result"),
                has_nsfw_contents=[],
                status=job.status,  # type: ignore[arg-type]
                created_at=job.created_at,
                error=job.error,
                timings=Timings(inference=job.inference_ms),
                progress=job.progress,
                jobs_ahead=store.jobs_ahead(job) if job.status == "created" else 0,
            )
        )

    def submitter(model: str):
        def submit(body: LipsyncRequest, request: Request) -> PredictionResponse:
            for kind in ("video", "audio"):
                _check_input(storage, kind, getattr(body, kind))
            job = store.create(model, body.model_dump())
            worker.notify()
            return envelope(job, request)

        return submit

    for model, title in MODELS.items():
        api.add_api_route(
            f"/{model}",
            submitter(model),
            methods=["POST"],
            response_model=PredictionResponse,
            summary=f"Submit a lip-sync job ({title} request shape)",
            tags=["lip sync"],
        )

    @api.get("/predictions/{job_id}/result", response_model=PredictionResponse, tags=["lip sync"])
    def result(job_id: str, request: Request) -> PredictionResponse:
        """A job's status; once completed, `outputs` holds the video's URL."""
        return envelope(store.get(job_id), request)

    @api.get("/predictions/{job_id}/output.mp4", response_class=FileResponse, tags=["lip sync"])
    def output(job_id: str) -> FileResponse:
        """The result video of a completed job."""
        job = store.get(job_id)
        path = storage.result(job.id)
        if job.status != "completed" or not path.is_file():
            raise HTTPException(404, f"prediction {job_id} has no result video (status: {job.status})")
        return FileResponse(path, media_type="video/mp4", filename=f"lipsync-{job.id}.mp4",
                            content_disposition_type="inline")  # fmt: skip

    @api.post(upload_route.removeprefix(API), response_model=UploadResponse, tags=["media"])
    def upload(request: Request, file: UploadFile = File(description="a video or audio file")) -> UploadResponse:
        """Store a file; its `download_url` is a valid `video` or `audio` for a job."""
        dest = storage.new_upload(file.filename)
        with dest.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        size = dest.stat().st_size
        if size == 0 or size > settings.max_upload_bytes:
            dest.unlink()
            if size == 0:
                raise HTTPException(400, "the uploaded file is empty")
            raise HTTPException(413, _too_large(settings))
        kind = (mimetypes.guess_type(file.filename or "")[0] or file.content_type or "").split("/")[0]
        return UploadResponse(
            data=Upload(
                type=kind if kind in ("video", "audio", "image") else "file",
                download_url=f"{str(request.base_url).rstrip('/')}{UPLOADS_ROUTE}/{dest.name}",
                filename=file.filename or dest.name,
                size=size,
            )
        )

    @api.get(UPLOADS_ROUTE.removeprefix(API) + "/{name}", response_class=FileResponse, tags=["media"])
    def uploaded(name: str) -> FileResponse:
        """An uploaded file, as stored."""
        path = storage.upload(name)
        guessed = mimetypes.guess_type(path.name)[0] or ""
        playable = guessed.split("/")[0] in ("video", "audio") or guessed in ("image/png", "image/jpeg")
        # Whatever a client uploaded, this origin never renders it as a page (its scripts could read the API key).
        return FileResponse(
            path,
            media_type=guessed if playable else "application/octet-stream",
            headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
        )

    app.include_router(api)

    @app.get("/health", tags=["server"])
    def health() -> dict[str, object]:
        """Liveness, and the inference defaults the web page shows; needs no API key."""
        return {"status": "ok", "version": __version__, "defaults": INFERENCE.as_dict()}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="LatentSync server API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _check_input(storage: Storage, kind: str, url: str) -> None:
    """Reject at once what can never work: an unknown upload or a URL that is not http(s)."""
    try:
        if storage.upload_for_url(url) is None:
            check_scheme(url)
    except (UnknownFile, FetchError) as exc:
        raise HTTPException(
            400, f"{kind}: {exc}; give an http(s) URL or the download_url of an upload to {API}/media/upload/binary"
        ) from None


def _too_large(settings: ServerSettings) -> str:
    return (
        f"request body too large: uploads may have up to {settings.max_upload_bytes / MB:g} MB, "
        f"other requests {MAX_JSON_BYTES / MB:g} MB"
    )


def _add_error_handlers(app: FastAPI) -> None:
    """Errors in the success responses' envelope, with a message a person can act on."""

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"code": status, "message": message, "data": None}, status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return error(400, f"invalid request: {problems}")

    @app.exception_handler(UnknownFile)
    async def unknown(_: Request, exc: UnknownFile) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:  # the traceback still goes to the server log
        return error(500, f"internal server error ({type(exc).__name__}); the server log has the details")


class BodyLimit:
    """Refuses a request body over its path's limit while it streams in, before it fills memory or disk.

    The 413 is raised from inside the body's reading, so the app's error handler answers it in the envelope.
    """

    def __init__(self, app: ASGIApp, limits: dict[str, int], default: int, message: str) -> None:
        self.app, self.limits, self.default, self.message = app, limits, default, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length", "")
        received = int(declared) if declared.isdigit() else 0

        async def limited() -> Message:
            nonlocal received
            if received > limit:  # declared too big: refuse before reading a byte
                raise HTTPException(413, self.message)
            message = await receive()
            if not declared:
                received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited, send)


def serve(settings: ServerSettings, pipeline: Pipeline, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings, pipeline), host=host, port=port)
