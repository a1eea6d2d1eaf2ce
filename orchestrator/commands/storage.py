"""`orchestrator storage check`: where crops, packs and run folders go, and whether we can write there."""

from __future__ import annotations

import click

from orchestrator.output import json_option, print_json
from shared.errors import WorkFailed


@click.group("storage")
def storage_group():
    """The storage root (STORAGE_URL, default DATA_DIR): docs/storage.md."""


@storage_group.command("check")
@json_option
def storage_check_command(as_json):
    """Write, read back and delete a small probe object; exit 1 if that fails. Credentials are never printed."""
    from shared.storage import check_store, open_store

    result = check_store(open_store())
    if as_json:
        print_json(result)
    else:
        where = result["storage"] + (f" (endpoint {result['endpoint']})" if result.get("endpoint") else "")
        click.echo(f"storage: {where}: " + (f"writable ({result['seconds']} s to write, read and delete)"
                                            if result["writable"] else "NOT writable"))
    if not result["writable"]:
        raise WorkFailed(f"cannot write to {result['storage']}: {result['error']}")
