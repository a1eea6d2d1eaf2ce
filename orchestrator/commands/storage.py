"""`orchestrator storage check`: where crops, packs and run folders go, and whether we can write there."""

from __future__ import annotations

import click

from orchestrator.output import json_option, print_json
from shared.errors import WorkFailed


@click.group("storage")
def storage_group():
    """The storage root (STORAGE_URL, default DATA_DIR): docs/storage.md."""


@storage_group.command("check")
@click.option("--create-bucket", is_flag=True,
              help="First create STORAGE_URL's bucket if it does not exist (a fresh object store; compose runs this once).")
@json_option
def storage_check_command(create_bucket, as_json):
    """Write, read back and delete a small probe object; exit 1 if that fails. Credentials are never printed."""
    from shared.storage import StorageError, check_store, open_store

    store = open_store()
    created = None
    if create_bucket:
        try:
            created = store.create_bucket()
        except StorageError as exc:
            raise WorkFailed(" ".join(str(exc).split())) from None
    result = check_store(store)
    if created is not None:
        result["bucket_created"] = created
    if as_json:
        print_json(result)
    else:
        where = result["storage"] + (f" (endpoint {result['endpoint']})" if result.get("endpoint") else "")
        if created is not None and store.remote:
            click.echo(f"bucket {store.base.split('/', 1)[0]}: " + ("created" if created else "exists"))
        click.echo(f"storage: {where}: " + (f"writable ({result['seconds']} s to write, read and delete)"
                                            if result["writable"] else "NOT writable"))
    if not result["writable"]:
        raise WorkFailed(f"cannot write to {result['storage']}: {result['error']}")
