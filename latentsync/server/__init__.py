"""`latentsync serve`: the hosted lip-sync services' task API and a web page, on the user's own GPU.

`create_app` builds the FastAPI app around an already loaded pipeline; `serve` runs it with uvicorn.
"""

from latentsync.server.app import MODELS, create_app, serve
from latentsync.server.settings import ServerSettings

__all__ = ["MODELS", "ServerSettings", "create_app", "serve"]
