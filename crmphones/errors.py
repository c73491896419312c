"""Errors, organised by what the caller should do.

::

    CRMPhonesError
    ├── ConfigError (ConfigValidationError)   fix a setting, then rerun
    ├── BatchFileError                        fix the tap's BATCH files, then rerun
    ├── AuthError (FatalAPIError)             stop now: the credential is wrong (401/403)
    ├── FatalRequestError (FatalAPIError)     stop now: the API refused in a way retrying won't fix
    ├── InterruptedRunError                   a signal stopped the run: rerun to send the rest
    └── TransientError (RetriableAPIError)    retry with backoff (429, 5xx, transport)

A record the API refuses for its content is not an error: dialects answer it as a
``WriteResult`` with a reason, which lands in the rejects table.

Messages are built before ``raise`` and never contain secrets: the HTTP layer redacts
URLs and never quotes headers.
"""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError

__all__ = [
    "AuthError",
    "BatchFileError",
    "CRMPhonesError",
    "ConfigError",
    "FatalRequestError",
    "InterruptedRunError",
    "TooManyRejectsError",
    "TransientError",
    "WritesGivenUpError",
]


class CRMPhonesError(Exception):
    """Base of every error raised by crmphones."""

    #: The process's exit code when this error ends a run (``cli.run_plugin``).
    exit_code = 1


class ConfigError(CRMPhonesError, ConfigValidationError):
    """A setting is missing or wrong; the message names it."""

    def __init__(self, message: str) -> None:
        # The SDK's CLI logs `errors` (one line each) when it catches a validation error.
        super().__init__(message, errors=[message])


class BatchFileError(CRMPhonesError):
    """A BATCH message names a file the target cannot read, or an encoding it cannot decode.

    The run stops there, before any later STATE: passing one on would move the bookmark past
    records never read.
    """


class AuthError(CRMPhonesError, FatalAPIError):
    """The API refused the credential (401) or the permission (403): stop at once."""


class FatalRequestError(CRMPhonesError, FatalAPIError):
    """The API refused a request in a way that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None, body: object = None) -> None:
        """Keep the status and the decoded body for the caller to classify."""
        super().__init__(message)
        self.status = status
        self.body = body


class TransientError(CRMPhonesError, RetriableAPIError):
    """A failure worth retrying: throttling, a 5xx, a dropped connection, a timeout."""


class WritesGivenUpError(CRMPhonesError):
    """The run ended with writes given up: the bookmark was held back, the run fails."""


class TooManyRejectsError(CRMPhonesError):
    """More of the input was rejected than ``max_rejected_fraction`` allows: the run fails."""

class InterruptedRunError(CRMPhonesError):
    """SIGTERM or SIGINT stopped the run: what was written is recorded, the bookmark stays
    before what was not, and the exit code is the shell's for that signal (128 + its number),
    so a scheduler tells a stop from a failure."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
