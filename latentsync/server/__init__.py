"""`latentsync serve`: the hosted lip-sync services' task API and a web page, on the user's own GPUs.

`create_app` builds the FastAPI app around already loaded pipelines (one per device); `serve` runs it with uvicorn.
Layout: schemas (request/response shapes), routes, deps (API key), middleware (body limit, error envelope),
services (store, fetch pool, GPU workers, supervisor), and one module per stage of a job's life.
"""

from latentsync.server.app import create_app, serve
from latentsync.server.lock import DataDirBusy
from latentsync.server.schemas import JOB_DEFAULTS, MODELS
from latentsync.server.settings import ServerSettings

__all__ = ["JOB_DEFAULTS", "MODELS", "DataDirBusy", "ServerSettings", "create_app", "serve"]
