"""What wraps every request: the body-size limit, and errors answered in the API's envelope."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from latentsync.server.jobs import JobBusy
from latentsync.server.retention import DiskFull
from latentsync.server.storage import UnknownFile


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


def add_error_handlers(app: FastAPI) -> None:
    """Errors in the success responses' envelope, with a message a person can act on."""

    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
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

    @app.exception_handler(JobBusy)
    async def busy(_: Request, exc: JobBusy) -> JSONResponse:
        return error(409, str(exc))

    @app.exception_handler(DiskFull)
    async def full(_: Request, exc: DiskFull) -> JSONResponse:
        return error(507, str(exc))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:  # the traceback still goes to the server log
        return error(500, f"internal server error ({type(exc).__name__}); the server log has the details")
