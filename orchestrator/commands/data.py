"""`orchestrator sample-data DIR` and `orchestrator db upgrade`."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.output import escape_name, json_option, print_json
from shared.errors import InputError


@click.command("sample-data")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="celebdf", show_default=True, metavar="celebdf|ffpp|dfdc|folders",
              help="Which dataset layout to write.")
@click.option("--reals", "reals_per_folder", type=int, default=3, show_default=True,
              help="Celeb-DF: real videos per real folder.")
@click.option("--identities", type=int, default=None,
              help="Celeb-DF: identities the Celeb-real videos are spread over [default: half of --reals].")
@click.option("--youtube", "youtube_reals", type=int, default=None,
              help="Celeb-DF: YouTube-real videos [default: --reals].")
@click.option("--fakes", type=int, default=4, show_default=True, help="Celeb-DF: fake videos.")
@click.option("--seconds", type=float, default=None, help="Length of each video [default: 7 for Celeb-DF, 1 otherwise].")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
def sample_data_command(dest, fmt, reals_per_folder, identities, youtube_reals, fakes, seconds, seed, as_json):
    """Write a small dataset in one of the layouts `ingest` reads, made on the spot from face images
    that ship inside packages (no download)."""
    from shared.sample_data import SAMPLE_FORMATS, make_sample

    fmt = fmt.lower()
    if fmt not in SAMPLE_FORMATS:
        raise InputError(f"unknown --format {fmt!r}; choose one of {', '.join(SAMPLE_FORMATS)}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: exists and is not an empty directory")
    if reals_per_folder < 1 or fakes < 1 or (seconds is not None and seconds <= 0):
        raise InputError("--reals and --fakes must be at least 1 and --seconds positive")
    if youtube_reals is not None and youtube_reals < 1:
        raise InputError("--youtube must be at least 1")
    if identities is not None and not 1 <= identities <= reals_per_folder:
        raise InputError(f"--identities must be between 1 and --reals ({reals_per_folder})")
    summary = make_sample(dest, fmt, reals_per_folder=reals_per_folder, fakes=fakes, seconds=seconds, seed=seed,
                          identities=identities, youtube_reals=youtube_reals)
    if as_json:
        print_json(summary)
        return
    counts = summary["counts"]
    click.echo(f"wrote {escape_name(dest)} ({fmt}): {counts['real']} real and {counts['fake']} fake videos; "
               f"{counts['official_test']} in the official test set")
    if summary.get("faces_repeat"):
        click.echo("note: more identities and YouTube-real videos than the package faces: faces repeat, so a "
                   "split can hold the same face on both sides (fewer --identities or --youtube avoid it)")


@click.group("db")
def db_group():
    """Database schema management."""


@db_group.command("upgrade")
def db_upgrade_command():
    """Bring the database schema up to date (Alembic migrations)."""
    from db.migrate import current
    from orchestrator.database import open_database
    from shared.settings import get_settings, mask_url

    open_database()
    click.echo(f"{mask_url(get_settings().database_url)}: schema at revision {current()}")
