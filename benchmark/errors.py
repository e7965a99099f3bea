"""Errors the CLI reports as one clear line (exit 1) instead of a traceback."""


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the message names the step. Checkpoints on disk are left untouched."""
