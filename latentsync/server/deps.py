"""Request dependencies: who may call the API (the bearer key), and the signed result URLs that need no key."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from latentsync.server.settings import ServerSettings

bearer = HTTPBearer(auto_error=False, description="the server's LATENTSYNC_API_KEY, when it has one")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]

WRONG_KEY = (
    "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key "
    "the server was started with (LATENTSYNC_API_KEY)"
)


def key_is_right(settings: ServerSettings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    if settings.api_key is None:
        return True
    return credentials is not None and hmac.compare_digest(credentials.credentials.encode(), settings.api_key.encode())


def authorizer(settings: ServerSettings) -> Callable[..., None]:
    """The dependency every API route has: the bearer key, when the server has one."""

    def authorize(credentials: Credentials) -> None:
        if not key_is_right(settings, credentials):
            raise HTTPException(401, WRONG_KEY, headers={"WWW-Authenticate": "Bearer"})

    return authorize


def base_url(request: Request) -> str:
    """The server's address as the client reached it, for the URLs handed back."""
    return str(request.base_url).rstrip("/")
