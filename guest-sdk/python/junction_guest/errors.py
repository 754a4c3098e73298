"""The contract's guest errors as Python exceptions.

A unit raises one of these; the SDK turns it into the WIT `error` variant
the host handles (retry after a delay, fail the job, ...). Any other
exception is a bug in the connector: the call traps and the host reports
it as such, never as a backend problem.
"""

DEFAULT_RETRY_SECONDS = 30


class ConnectorError(Exception):
    """Base of every error the contract knows."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Retryable(ConnectorError):
    """Transient failure; try again after `seconds`."""

    def __init__(self, message: str, seconds: int = DEFAULT_RETRY_SECONDS):
        super().__init__(message)
        self.seconds = max(0, int(seconds))


class RateLimited(ConnectorError):
    """The backend throttled us; its limit resets after `seconds`."""

    def __init__(self, message: str, seconds: int = 60):
        super().__init__(message)
        self.seconds = max(0, int(seconds))


class Permanent(ConnectorError):
    """Retrying cannot help."""


class NotFound(ConnectorError):
    """The record does not exist in the backend."""


class ConfigError(ConnectorError):
    """The backend settings, credentials or allowlist are wrong."""


class NothingToDo(ConnectorError):
    """There was nothing to do; not a failure."""


def to_wit(error: ConnectorError):
    """The WIT `error` value for `error` (inside a component only)."""
    from . import _wit_types as t

    if isinstance(error, Retryable):
        return t.Error_Retryable(t.Delay(seconds=error.seconds, message=error.message))
    if isinstance(error, RateLimited):
        return t.Error_RateLimited(t.Delay(seconds=error.seconds, message=error.message))
    if isinstance(error, NotFound):
        return t.Error_NotFound(error.message)
    if isinstance(error, ConfigError):
        return t.Error_Config(error.message)
    if isinstance(error, NothingToDo):
        return t.Error_NothingToDo(error.message)
    return t.Error_Permanent(error.message)
