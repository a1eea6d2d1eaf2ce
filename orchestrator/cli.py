"""The `orchestrator` command: parse, call one function, print text for people or --json."""

from __future__ import annotations

import json
import sys

import click

import shared.quiet  # noqa: F401  (sets the native libraries' log levels before they load)
from orchestrator.errors import InputError, WorkFailed

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class PipelineGroup(click.Group):
    """Turns the errors a user can meet into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import OperationalError

        try:
            return super().invoke(ctx)
        except InputError as exc:
            fail(str(exc), EXIT_BAD_INPUT)
        except WorkFailed as exc:
            fail(str(exc), EXIT_FAILED)
        except OperationalError as exc:
            from shared.settings import get_settings, mask_url

            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            fail(f"database {mask_url(get_settings().database_url)}: {reason}", EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("interrupted: what was recorded is kept; run the command again to resume", err=True)
            sys.exit(130)


@click.group(cls=PipelineGroup)
@click.version_option(package_name="celebdf-pipeline")
def main() -> None:
    """Celeb-DF videos to face crops to an evaluated real-vs-fake classifier, on Celery workers.

    With nothing configured everything runs on this machine (SQLite and local workers under
    DATA_DIR, default ./data). Set DATABASE_URL and CELERY_BROKER_URL to use a cluster.
    """


def _register_commands() -> None:
    from orchestrator.commands import ALL_COMMANDS

    for command in ALL_COMMANDS:
        main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
