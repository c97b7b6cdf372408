"""The root of the errors a user can act on (bad input, missing files), as opposed to bugs.

The command line prints these as one line and exits non-zero; anything else keeps its traceback.
"""


class LatentSyncError(Exception):
    """Base of every expected, user-facing error in latentsync."""


class InvalidArgumentError(LatentSyncError, ValueError):
    """An option or argument outside what the operation accepts."""
