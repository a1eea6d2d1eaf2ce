"""Errors the CLI turns into one line and an exit code (see orchestrator/cli.py)."""


class InputError(Exception):
    """The user pointed us at something we cannot use: exit code 2, nothing changed."""


class WorkFailed(Exception):
    """The work ran and some of it failed: exit code 1."""
