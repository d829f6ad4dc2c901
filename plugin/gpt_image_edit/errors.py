"""Every way an edit can fail, each with the one sentence a retoucher reads.

`str(error)` is that sentence: what happened and what to do. `kind` and `exit_code` are the
values of docs/job-protocol.md. Messages are built by the caller from facts it knows (never
from the API key); the client redacts anything the server echoes back before it gets here.
"""

from __future__ import annotations

import os

KEY_ENV = "GPT_IMAGE_EDIT_API_KEY"
# Set by a front end that starts the worker (the GIMP hosts set their settings menu): where
# its user changes the settings. The worker says what is wrong; the front end, where to fix it.
SETTINGS_PLACE_ENV = "GPT_IMAGE_EDIT_SETTINGS_PLACE"

# The exit codes of the command-line tool and the worker (product.md, "Exit codes"): the
# one place they are defined.
EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_FAILED = 4
EXIT_HOST_GONE = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES_HELP = """exit codes:
  0    done
  1    an unexpected failure (see the log beside the settings file)
  2    usage, input or local file error (an unwritable output folder, a full disk)
  3    the API refused (key, moderation, quota, rate limit)
  4    network or server failure
  5    the job's host went away
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM)"""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised on the main thread so that it is handled exactly like Ctrl-C."""


class EditError(Exception):
    """A failure with one sentence for the user as its text."""

    kind = "edit"
    exit_code = EXIT_FAILED
    default_message = "The edit failed: try again, and see the log if it keeps failing."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message.format(settings=settings_place()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class BadInputError(EditError):
    kind = "bad_input"
    exit_code = EXIT_BAD_INPUT
    default_message = "The input is not usable: check the files and options and try again."


class CostLimitError(EditError):
    """The estimate is above the spending limit: refused before anything is sent."""

    kind = "cost_limit"
    exit_code = EXIT_BAD_INPUT
    default_message = "The estimated cost is above the spending limit: nothing was sent."


class MissingKeyError(EditError):
    kind = "missing_key"
    exit_code = EXIT_BAD_INPUT
    default_message = "No API key is set: enter it in {settings} or set " + KEY_ENV + "."


class AuthenticationError(EditError):
    kind = "authentication"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate did not accept the API key: check it in {settings} "
                       "(or " + KEY_ENV + ").")


class PermissionDeniedError(EditError):
    kind = "permission"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate refused this request for your API key (the key or its group "
                       "may be disabled, or not allowed to use this model): check your account "
                       "on wisgate.ai or choose another model.")


class ModerationError(EditError):
    kind = "moderation"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate's safety system refused this edit: change the prompt or the "
                       "picture and try again.")


class RateLimitError(EditError):
    kind = "rate_limit"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate is rate limiting your requests: wait a minute and try again, "
                       "or send fewer edits at once.")

    def __init__(self, message: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class QuotaError(EditError):
    kind = "quota"
    exit_code = EXIT_REFUSED
    default_message = ("Your WisGate balance or quota is used up: top it up on wisgate.ai, "
                       "then try again.")


class TooLargeError(EditError):
    kind = "too_large"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate refused the upload as too large: select a smaller area or "
                       "scale the layer down, then try again.")


class BadRequestError(EditError):
    kind = "bad_request"
    exit_code = EXIT_REFUSED
    default_message = ("WisGate refused the request: check the model, size and quality, "
                       "then try again.")


class ServerError(EditError):
    kind = "server"
    exit_code = EXIT_FAILED
    default_message = ("The WisGate server or its gateway is having trouble: try again in a "
                       "few minutes.")


class NetworkError(EditError):
    kind = "network"
    exit_code = EXIT_FAILED
    default_message = ("Could not reach WisGate: check the internet connection and the "
                       "endpoint in {settings}, then try again.")


class RequestTimeoutError(EditError):
    kind = "timeout"
    exit_code = EXIT_FAILED
    default_message = ("WisGate did not answer in time: try again, or raise the timeout "
                       "(GPT_IMAGE_EDIT_TIMEOUT or {settings}).")


class BadResponseError(EditError):
    kind = "bad_response"
    exit_code = EXIT_FAILED
    default_message = ("WisGate sent an answer that could not be read: try again in a few "
                       "minutes.")


class UnexpectedError(EditError):
    """A bug, not a failure the user can act on: the sentence points to the log."""

    kind = "internal"
    exit_code = EXIT_CRASHED


def settings_place(environ=os.environ) -> str:
    """Where the user changes the settings: as the front end that started the worker names
    it, else (the command line) the settings file and the command that shows it."""
    place = environ.get(SETTINGS_PLACE_ENV, "").strip()
    if place:
        return place
    from .settings import config_path

    return f"{config_path(environ)} (gpt-image-edit settings shows it)"


def endpoint_has_userinfo() -> str:
    """The sentence for an endpoint holding a user name or password (never repeated)."""
    return ("The endpoint holds a user name or password, which is never sent: remove it from "
            f"the endpoint in {settings_place()} (or GPT_IMAGE_EDIT_BASE_URL); the API key goes "
            "in the key setting.")


def unexpected_failure(who: str, log_file) -> UnexpectedError:
    """The error for an exception nobody expected; `who` is what failed, for example
    "The worker" (the traceback is for the log, not for this sentence)."""
    return UnexpectedError(f"{who} failed unexpectedly: see the log at {log_file}.")
