"""Errors the tap raises on purpose.

Each carries a message written for the person running the tap, so `main` can
print it as one line without a traceback.
"""


class TapWootricError(Exception):
    """A failure the tap understands and can explain in one line."""


class ConfigError(TapWootricError):
    """The config file is missing something or holds a value the tap cannot use."""


class InputFileError(TapWootricError):
    """A state or catalog file is unreadable or has the wrong shape."""


class AuthError(TapWootricError):
    """The OAuth endpoint refused the credentials."""


class ApiError(TapWootricError):
    """The Wootric API answered with an error the tap cannot retry past."""

    def __init__(self, message: str, status: "int | None" = None):
        super().__init__(message)
        self.status = status


class Refused(ApiError):
    """The API refuses this account a feature (apis.REFUSAL_STATUSES after a valid token), or cannot be
    located. Fatal for a required stream; an optional stream, or the group sharing the API, is skipped."""

    def __init__(self, message: str, status: "int | None", api: object):
        super().__init__(message, status)
        self.api = api


class NetworkError(TapWootricError):
    """The API could not be reached at all."""
