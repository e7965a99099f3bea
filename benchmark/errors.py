"""Every error the CLI reports as one clear line instead of a traceback, and its exit code.

2: bad input (params.yaml, a CLI value, a data file in the wrong format, a checkpoint of another configuration);
1: a runtime failure (a NaN loss, a download that failed). `exit_code(error)` is the one mapping the CLI, `tune`
and `bench` use.
"""

from __future__ import annotations

BAD_INPUT = 2
RUNTIME_FAILURE = 1


class ConfigError(ValueError):
    """params.yaml is invalid; the message says where and what is allowed."""

    exit_code = BAD_INPUT


class ResumeMismatch(RuntimeError):
    """A checkpoint was written by another configuration or code; the message says how to proceed."""

    exit_code = BAD_INPUT


class DamagedCheckpoint(RuntimeError):
    """A checkpoint file cannot be read (truncated, empty, not a checkpoint); the message names it and the fix."""

    exit_code = RUNTIME_FAILURE


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the message names the step. Checkpoints on disk are left untouched."""

    exit_code = RUNTIME_FAILURE


def exit_code(error: BaseException) -> int | None:
    """The exit code of an error the CLI reports in one line; None for anything else (a bug: show the traceback).

    Errors of this project carry `exit_code`; a missing file, a data file in a wrong format (which `prepare` can
    redo) and a failed download are runtime failures.
    """
    from asymfusion.datasets.artifacts import FetchError
    from asymfusion.datasets.formats import DataFormatError

    if hasattr(error, "exit_code") and isinstance(error.exit_code, int):
        return error.exit_code
    if isinstance(error, (DataFormatError, FetchError, FileNotFoundError)):
        return RUNTIME_FAILURE
    return None


def describe(error: BaseException) -> str:
    """The one line (or block) the CLI prints for a reported error."""
    if isinstance(error, ConfigError):
        return f"error: invalid configuration\n{error}"
    return f"error: {error}"
