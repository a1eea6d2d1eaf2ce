"""`orchestrator status`, `export` and `datasets`: what the database knows."""

from __future__ import annotations

import csv
import json
import sys

import click

from orchestrator.output import format_datasets, format_status, json_option, print_json

dataset_option = click.option("--dataset", "dataset", default=None, metavar="NAME",
                              help="One dataset (`orchestrator datasets` lists them) [default: every dataset].")


@click.command("status")
@dataset_option
@json_option
def status_command(dataset, as_json):
    """Where ingest stands: videos by outcome and label, crops, failures."""
    from orchestrator.database import open_database
    from workers.planning.status import find_dataset_id, ingest_status

    open_database()
    status = ingest_status(find_dataset_id(dataset) if dataset else None)
    if as_json:
        print_json(status)
    else:
        click.echo(format_status(status))


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@dataset_option
def export_command(fmt, dataset):
    """Every crop as a row on stdout: video, label, box, confidence, crop path, landmarks, method."""
    from orchestrator.database import open_database
    from workers.planning.status import export_columns, export_rows, find_dataset_id

    open_database()
    dataset_id = find_dataset_id(dataset) if dataset else None
    out = sys.stdout
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=export_columns(dataset_id), lineterminator="\n")
        writer.writeheader()
        for row in export_rows(dataset_id):
            row["official_test"] = int(row["official_test"])
            writer.writerow(row)
    else:
        for row in export_rows(dataset_id):
            out.write(json.dumps(row) + "\n")


@click.command("datasets")
@json_option
def datasets_command(as_json):
    """Every dataset: format, folder, videos by label, crops, official test videos, ingest parameters."""
    from orchestrator.database import open_database
    from workers.planning.status import list_datasets

    open_database()
    rows = list_datasets()
    if as_json:
        print_json(rows)
    else:
        click.echo(format_datasets(rows))
