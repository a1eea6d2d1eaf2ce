"""`orchestrator status` and `orchestrator export`: what the database knows."""

from __future__ import annotations

import csv
import json
import sys

import click


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status_command(as_json):
    """Where ingest stands: videos by outcome and label, crops, failures."""
    from db.session import init_db
    from orchestrator.report import ingest_status

    init_db()
    status = ingest_status()
    if as_json:
        from orchestrator.cli import print_json

        print_json(status)
        return
    videos = status["videos"]
    click.echo(f"videos: {videos['total']} ({videos['by_label']['real']} real, {videos['by_label']['fake']} fake)")
    click.echo("  " + ", ".join(f"{k} {v}" for k, v in videos["by_status"].items()))
    click.echo(f"crops: {status['crops']}")
    for failure in status["failures"]:
        click.echo(f"failed: {failure['video']}: {failure['error']}")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
def export_command(fmt):
    """Every crop as a row on stdout: video, label, box, confidence, crop path."""
    from db.session import init_db
    from orchestrator.report import EXPORT_COLUMNS, export_rows

    init_db()
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
