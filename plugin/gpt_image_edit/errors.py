"""Every way an edit can fail, each with the one sentence a retoucher reads.

`str(error)` is that sentence: what happened and what to do. `kind` and `exit_code` are the
values of docs/job-protocol.md. Messages are built by the caller from facts it knows (never
from the API key); the client redacts anything the server echoes back before it gets here.
"""

from __future__ import annotations

SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
KEY_ENV = "GPT_IMAGE_EDIT_API_KEY"
ENDPOINT_HAS_USERINFO = (
    "The endpoint holds a user name or password, which is never sent: remove it from the "
    f"endpoint in {SETTINGS_MENU} (or GPT_IMAGE_EDIT_BASE_URL); the API key goes in the key "
    "setting.")

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
        super().__init__(message or self.default_message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class BadInputError(EditError):
    kind = "bad_input"
    exit_code = EXIT_BAD_INPUT
    default_message = "The input is not usable: check the files and options and try again."


class MissingKeyError(EditError):
    kind = "missing_key"
    exit_code = EXIT_BAD_INPUT
    default_message = f"No API key is set: enter it in {SETTINGS_MENU} or set {KEY_ENV}."


class AuthenticationError(EditError):
    kind = "authentication"
    exit_code = EXIT_REFUSED
    default_message = (f"WisGate did not accept the API key: check it in {SETTINGS_MENU} "
                       f"(or {KEY_ENV}).")


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
                       f"endpoint in {SETTINGS_MENU}, then try again.")


class RequestTimeoutError(EditError):
    kind = "timeout"
    exit_code = EXIT_FAILED
    default_message = ("WisGate did not answer in time: try again, or raise the timeout "
                       f"(GPT_IMAGE_EDIT_TIMEOUT or {SETTINGS_MENU}).")


class BadResponseError(EditError):
    kind = "bad_response"
    exit_code = EXIT_FAILED
    default_message = ("WisGate sent an answer that could not be read: try again in a few "
                       "minutes.")


class UnexpectedError(EditError):
    """A bug, not a failure the user can act on: the sentence points to the log."""

    kind = "internal"
    exit_code = EXIT_CRASHED


def unexpected_failure(who: str, log_file) -> UnexpectedError:
    """The error for an exception nobody expected; `who` is what failed, for example
    "The worker" (the traceback is for the log, not for this sentence)."""
    return UnexpectedError(f"{who} failed unexpectedly: see the log at {log_file}.")
