"""The `orchestrator` command: parse, call one function, print text for people or --json."""

from __future__ import annotations

import sys

import click

import shared.quiet  # noqa: F401  (sets the native libraries' log levels before they load)
from orchestrator.commands import ALL_COMMANDS
from shared.errors import PipelineError

EXIT_FAILED = 1


def fail(message: str, code: int) -> None:
    if message:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


class PipelineGroup(click.Group):
    """Turns the errors a user can meet into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        from sqlalchemy.exc import OperationalError

        try:
            return super().invoke(ctx)
        except PipelineError as exc:
            fail(str(exc), exc.exit_code)
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


for _command in ALL_COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
