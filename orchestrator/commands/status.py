"""`orchestrator status` and `orchestrator export`: what the database knows."""

from __future__ import annotations

import csv
import json
import sys

import click

from orchestrator.output import format_status, json_option, print_json


@click.command("status")
@json_option
def status_command(as_json):
    """Where ingest stands: videos by outcome and label, crops, failures."""
    from db.migrate import upgrade_schema
    from workers.planning.status import ingest_status

    upgrade_schema()
    status = ingest_status()
    if as_json:
        print_json(status)
    else:
        click.echo(format_status(status))


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
def export_command(fmt):
    """Every crop as a row on stdout: video, label, box, confidence, crop path."""
    from db.migrate import upgrade_schema
    from workers.planning.status import EXPORT_COLUMNS, export_rows

    upgrade_schema()
    out = sys.stdout
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in export_rows():
            row["official_test"] = int(row["official_test"])
            writer.writerow(row)
    else:
        for row in export_rows():
            out.write(json.dumps(row) + "\n")
