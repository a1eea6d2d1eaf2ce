"""The errors a user can meet, at every layer. The CLI turns them into one line and an exit code."""


class PipelineError(Exception):
    """Base of the project's own errors."""

    exit_code = 1


class InputError(PipelineError, ValueError):
    """The user pointed us at something we cannot use: exit code 2, nothing changed."""

    exit_code = 2


class WorkFailed(PipelineError):
    """The work ran and some of it failed: exit code 1. An empty message means the output
    printed before it already says what failed."""

    exit_code = 1
