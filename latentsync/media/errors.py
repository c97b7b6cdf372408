"""The one exception type of the media package."""

from __future__ import annotations

from latentsync.errors import LatentSyncError


class MediaError(LatentSyncError, ValueError):
    """A media file is missing, unreadable, lacks what we need, or a frame/audio array does not fit."""
