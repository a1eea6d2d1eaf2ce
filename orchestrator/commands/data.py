"""`orchestrator sample-data DIR` and `orchestrator db upgrade`."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.output import json_option, print_json
from shared.errors import InputError


@click.command("sample-data")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--reals", "reals_per_folder", type=int, default=3, show_default=True, help="Real videos per real folder.")
@click.option("--fakes", type=int, default=4, show_default=True, help="Fake videos.")
@click.option("--seconds", type=float, default=7.0, show_default=True, help="Length of each video.")
@click.option("--seed", type=int, default=0, show_default=True)
@json_option
def sample_data_command(dest, reals_per_folder, fakes, seconds, seed, as_json):
    """Write a small Celeb-DF-shaped dataset made from face images that ship inside packages."""
    from shared.sample_data import make_sample_dataset

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: exists and is not an empty directory")
    if reals_per_folder < 1 or fakes < 1 or seconds <= 0:
        raise InputError("--reals and --fakes must be at least 1 and --seconds positive")
    summary = make_sample_dataset(dest, reals_per_folder=reals_per_folder, fakes=fakes, seconds=seconds, seed=seed)
    if as_json:
        print_json(summary)
        return
    counts = ", ".join(f"{folder} {len(paths)}" for folder, paths in summary["videos"].items())
    click.echo(f"wrote {dest}: {counts}; {len(summary['test_list'])} videos in the official test list")


@click.group("db")
def db_group():
    """Database schema management."""


@db_group.command("upgrade")
def db_upgrade_command():
    """Bring the database schema up to date (Alembic migrations)."""
    from db.migrate import current, upgrade_schema
    from shared.settings import get_settings, mask_url

    upgrade_schema()
    click.echo(f"{mask_url(get_settings().database_url)}: schema at revision {current()}")
