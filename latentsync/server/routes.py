"""The HTTP routes: the hosted lip-sync services' task API under /api/v3, the web page and the API docs.

Every answer under /api/v3, errors included, is the envelope `{"code", "message", "data"}`; submitting returns
at once with a `created` job, which the GPU workers run in order while clients poll its result URL.
"""

from __future__ import annotations

import base64
import mimetypes
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from latentsync import __version__
from latentsync.errors import LatentSyncError
from latentsync.server.deps import WRONG_KEY, Credentials, authorizer, base_url, key_is_right
from latentsync.server.fetch import FetchError, FetchPolicy, check_url, fetch
from latentsync.server.openapi import openapi_30
from latentsync.server.retention import check_space, free_inputs
from latentsync.server.schemas import (
    ERRORS,
    JOB_DEFAULTS,
    MODELS,
    Deleted,
    DeletedResponse,
    FaceBox,
    Faces,
    FacesRequest,
    FacesResponse,
    LipsyncRequest,
    PredictionResponse,
    Upload,
    UploadResponse,
)
from latentsync.server.services import API, Services
from latentsync.server.settings import MB
from latentsync.server.storage import UPLOADS_ROUTE, UnknownFile
from latentsync.server.worker import public_message

STATIC = Path(__file__).parent / "static"
UPLOAD_ROUTE = f"{API}/media/upload/binary"
MAX_JSON_BYTES = 1 * MB  # any request but an upload
FRAME_PREVIEW_WIDTH = 640
FACE_SEARCH_FRAMES = 75  # the faces endpoint looks this far into the video (3 s at 25 fps) for a frame with faces


def too_large(max_upload_bytes: int) -> str:
    return (
        f"request body too large: uploads may have up to {max_upload_bytes / MB:g} MB, "
        f"other requests {MAX_JSON_BYTES / MB:g} MB"
    )


def add_routes(app: FastAPI, services: Services) -> None:
    settings = services.settings
    api = APIRouter(prefix=API, dependencies=[Depends(authorizer(settings))], responses=ERRORS)

    def check_input(kind: str, url: str) -> None:
        """Refuse at once what the fetch would refuse later: an unknown upload, a URL that is not http(s) or
        whose host is a loopback/private address the operator did not allow."""
        try:
            if services.storage.upload_for_url(url) is None:
                check_url(url, settings.allow_networks)
        except (UnknownFile, FetchError) as exc:
            hint = f"give an http(s) URL or the download_url of an upload to {UPLOAD_ROUTE}"
            raise HTTPException(400, f"{kind}: {exc}" + ("" if kind == "webhook_url" else f"; {hint}")) from None

    def submitter(model: str):
        def submit(body: LipsyncRequest, request: Request) -> PredictionResponse:
            if body.active_speaker and (body.face_index is not None or body.face_at is not None):
                raise HTTPException(
                    400, "active_speaker picks the face itself: give it or face_index/face_at, not both"
                )
            for kind in ("video", "audio"):
                check_input(kind, getattr(body, kind))
            if body.webhook_url is not None:
                check_input("webhook_url", body.webhook_url)
            check_space(services.storage, settings)
            job = services.store.create(model, body.model_dump(), base_url(request))
            services.submitted()
            return services.envelope(job, base_url(request))

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
        """A job's status; once completed, `outputs` holds the video's signed URL."""
        return services.envelope(services.store.get(job_id), base_url(request))

    @api.delete("/predictions/{job_id}", response_model=DeletedResponse, tags=["lip sync"])
    def delete(job_id: str) -> DeletedResponse:
        """Forget a job that is not running: its record, its result video and its uploads (unless other jobs use
        them). A waiting job is taken off the queue."""
        job = services.store.delete(job_id)
        services.storage.remove_job(job.id)
        free_inputs(job, services.store, services.storage)
        return DeletedResponse(data=Deleted(id=job.id))

    @api.post(UPLOAD_ROUTE.removeprefix(API), response_model=UploadResponse, tags=["media"])
    def upload(
        request: Request, file: Annotated[UploadFile, File(description="a video or audio file")]
    ) -> UploadResponse:
        """Store a file; its `download_url` is a valid `video` or `audio` for a job."""
        check_space(services.storage, settings)
        dest = services.storage.new_upload(file.filename)
        with dest.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        size = dest.stat().st_size
        if size == 0 or size > settings.max_upload_bytes:
            dest.unlink()
            if size == 0:
                raise HTTPException(400, "the uploaded file is empty")
            raise HTTPException(413, too_large(settings.max_upload_bytes))
        kind = (mimetypes.guess_type(file.filename or "")[0] or file.content_type or "").split("/")[0]
        return UploadResponse(
            data=Upload(
                type=kind if kind in ("video", "audio", "image") else "file",
                download_url=f"{base_url(request)}{UPLOADS_ROUTE}/{dest.name}",
                filename=file.filename or dest.name,
                size=size,
            )
        )

    @api.get(UPLOADS_ROUTE.removeprefix(API) + "/{name}", response_class=FileResponse, tags=["media"])
    def uploaded(name: str) -> FileResponse:
        """An uploaded file, as stored."""
        path = services.storage.upload(name)
        guessed = mimetypes.guess_type(path.name)[0] or ""
        playable = guessed.split("/")[0] in ("video", "audio") or guessed in ("image/png", "image/jpeg")
        # Whatever a client uploaded, this origin never renders it as a page (its scripts could read the API key).
        return FileResponse(
            path,
            media_type=guessed if playable else "application/octet-stream",
            headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
        )

    detecting = threading.Lock()

    @api.post("/faces", response_model=FacesResponse, tags=["media"])
    def faces(body: FacesRequest) -> FacesResponse:
        """The faces in the video's first frame that shows any, boxed: pass a box's `center` as `face_at`."""
        check_input("video", body.video)
        with tempfile.TemporaryDirectory(dir=services.storage.work) as folder:
            path = services.storage.upload_for_url(body.video)
            if path is None:
                path = Path(folder) / "video"
                policy = FetchPolicy(settings.max_download_bytes, settings.download_timeout, settings.allow_networks)
                try:
                    fetch(body.video, path, policy)
                except FetchError as exc:
                    raise HTTPException(400, f"video: {exc}") from None
            try:
                with detecting:
                    return FacesResponse(data=_first_faces(path, services.pipelines[-1]))
            except LatentSyncError as exc:
                message = public_message(exc, {str(path): "the video"}, services.storage.root)
                raise HTTPException(400, f"video: {message}") from None

    app.include_router(api)

    results = APIRouter(prefix=API, responses=ERRORS)

    @results.head("/predictions/{job_id}/output.mp4", include_in_schema=False)
    @results.get("/predictions/{job_id}/output.mp4", response_class=FileResponse, tags=["lip sync"])
    def output(
        job_id: str,
        request: Request,
        credentials: Credentials,
        expires: str | None = None,
        signature: str | None = None,
    ) -> FileResponse:
        """The result video of a completed job: with the signature of its `outputs` URL, or the bearer key.
        Answers HEAD and byte-range requests (players seek)."""
        signed = services.signer.check_path(request.url.path, expires, signature)
        if not signed and not key_is_right(settings, credentials):
            message = "the result URL has expired or is not signed: get a fresh one from the result endpoint"
            if not expires and not signature:
                message = WRONG_KEY
            raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
        job = services.store.get(job_id)
        path = services.storage.result(job.id)
        if job.status != "completed" or not path.is_file():
            raise HTTPException(404, f"prediction {job.id} has no result video (status: {job.status})")
        return FileResponse(
            path, media_type="video/mp4", filename=f"lipsync-{job.id}.mp4", content_disposition_type="inline"
        )

    app.include_router(results)
    _add_pages(app)


def _first_faces(path: Path, pipeline: Any) -> Faces:
    """Boxes of the faces in the first frame (of the first FACE_SEARCH_FRAMES) that has any, and that frame."""
    import cv2

    from latentsync.media import MediaError, VideoReader

    found: list = []
    index, frame = 0, None
    for index, frame in enumerate(VideoReader(path, fps=None, read_ahead=0)):
        found = pipeline.detector.detect(frame)
        if found or index + 1 >= FACE_SEARCH_FRAMES:
            break
    if frame is None:
        raise MediaError("the video has no frames")
    height, width = frame.shape[:2]
    scale = min(1.0, FRAME_PREVIEW_WIDTH / width)
    preview = cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(preview, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    boxes = [
        FaceBox(box=tuple(float(v) for v in face.box), center=tuple(float(v) for v in face.center))  # type: ignore[arg-type]
        for face in sorted(found, key=lambda face: float(face.center[0]))
    ]
    image = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()
    return Faces(width=width, height=height, faces=boxes, frame=index, image=image)


def _add_pages(app: FastAPI) -> None:
    @app.get("/health", tags=["server"])
    def health() -> dict[str, object]:
        """Liveness, and the inference defaults; needs no API key."""
        return {"status": "ok", "version": __version__, "defaults": JOB_DEFAULTS.as_dict()}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(openapi_30(app))

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="LatentSync server API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
