"""The `orchestrator` command: parse, call one function, print text for people or --json."""

from __future__ import annotations

import errno
import os
import signal
import sys

import click

import shared.quiet  # noqa: F401  (sets the native libraries' log levels before they load)
from orchestrator.commands import ALL_COMMANDS
from shared.errors import InputError, PipelineError

EXIT_FAILED = 1


def fail(message: str, code: int) -> None:
    if message:
        from orchestrator.output import escape_name

        click.echo(f"error: {escape_name(message)}", err=True)
    sys.exit(code)


EXIT_INPUT = 2
# Errors of the machine's files that mean the user pointed us somewhere unusable.
_INPUT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EROFS, errno.EEXIST, errno.ENOENT}


class Interrupted(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a scheduler): handled like Ctrl-C, so the local workers stop too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PipelineGroup(click.Group):
    """Turns the errors a user can meet into one line and an exit code, never a traceback."""

    def main(self, *args, **kwargs):
        # Click's usage errors print four lines (usage, hint, blank, error): one is enough.
        kwargs.pop("standalone_mode", None)
        try:
            super().main(*args, standalone_mode=False, **kwargs)
            return None  # the console script does sys.exit(main()): a command's value is no exit code
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("interrupted", 130)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # `orchestrator` alone: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            names, ctx = [], exc.ctx
            while ctx is not None and ctx.parent is not None:
                names.insert(0, ctx.info_name)
                ctx = ctx.parent
            fail(f"{exc.format_message()} (see `{' '.join(['orchestrator', *names, '--help'])}`)", EXIT_INPUT)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)

    def invoke(self, ctx: click.Context):
        signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            check_environment()
            return super().invoke(ctx)
        except PipelineError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            name = "terminated" if signum == signal.SIGTERM else "interrupted"
            click.echo(f"{name}: what was recorded is kept; run the command again to resume", err=True)
            sys.exit(128 + signum)
        except Exception as exc:
            fail_on_service_or_os_error(exc)
            raise


def fail_on_service_or_os_error(exc: Exception) -> None:
    """One line and an exit code for a database or broker that refused, or a file of the machine.

    The database and broker libraries are looked up, not imported: a command that never used them
    cannot have raised their errors, and importing SQLAlchemy first would delay every command
    (and the start of its local workers) by ~0.35 s."""
    from shared.settings import get_settings, mask_url

    database_errors, broker_errors = sys.modules.get("sqlalchemy.exc"), sys.modules.get("kombu.exceptions")
    if database_errors is not None and isinstance(exc, database_errors.OperationalError):
        advice = "; free space and run the same command again: what was recorded is kept" \
            if "disk is full" in str(exc) else ""
        fail(f"database {mask_url(get_settings().database_url)}: {first_line(exc)}{advice}", EXIT_FAILED)
    if broker_errors is not None and isinstance(exc, broker_errors.OperationalError):
        fail(f"broker {mask_url(get_settings().broker_url)}: {first_line(exc)}", EXIT_FAILED)
    if isinstance(exc, OSError):  # a folder or file of the machine: DATA_DIR, a dataset, a model
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or first_line(exc)}", EXIT_INPUT if exc.errno in _INPUT_ERRNOS else EXIT_FAILED)


def check_environment() -> None:
    """Settings every command needs, checked before anything is written: one line when wrong."""
    from shared.settings import get_settings

    settings = get_settings()
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise InputError(f"DATA_DIR {settings.data_dir}: not a directory")
    if os.environ.get("DATABASE_URL"):  # the embedded default (SQLite in DATA_DIR) needs no check
        from db.session import check_database_url

        check_database_url(settings.database_url)


@click.group(cls=PipelineGroup)
@click.version_option(package_name="celebdf-pipeline")
def main() -> None:
    """Celeb-DF videos to face crops to an evaluated real-vs-fake classifier, on Celery workers.

    With nothing configured everything runs on this machine (SQLite and local workers under
    DATA_DIR, default ./data). Set DATABASE_URL and CELERY_BROKER_URL to use a cluster.
    """


for _command in ALL_COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
