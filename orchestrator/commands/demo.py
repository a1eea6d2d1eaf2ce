"""`orchestrator demo`: the whole pipeline on sample data, start to finish."""

from __future__ import annotations

import os
from pathlib import Path

import click

from orchestrator.output import format_ingest, format_prediction, format_report
from shared.errors import WorkFailed
from shared.labels import RUN_DONE
from shared.preprocessing import BACKBONES


@click.command("demo")
@click.argument("dest", type=click.Path(path_type=Path), default=Path("sample"))
@click.option("--epochs", type=int, default=2, show_default=True, help="Training epochs (brief: this is a demo).")
@click.option("--backbone", type=click.Choice(BACKBONES), default="resnet50", show_default=True)
@click.option("--weights", default="none", show_default=True,
              help="none trains from scratch (works offline); imagenet downloads Keras's weights.")
@click.option("--workers", type=int, default=None, help="Local worker processes for ingest [default: CPU count].")
def demo_command(dest, epochs, backbone, weights, workers):
    """Make sample data, ingest it, train briefly, report, and judge a held-out video."""
    from orchestrator.jobs import predict_videos, run_ingest, run_training
    from shared.sample_data import make_sample_dataset

    if not (dest / "List_of_testing_videos.txt").exists():
        click.echo(f"1/4 writing a sample Celeb-DF dataset to {dest}")
        make_sample_dataset(dest, reals_per_folder=6, fakes=8)
    else:
        click.echo(f"1/4 using the sample dataset in {dest}")
    click.echo("2/4 ingest: one task per video on local Celery workers")
    result = run_ingest(str(dest), workers=workers or os.cpu_count() or 1, wait=True, progress=True)
    click.echo(format_ingest(result))
    click.echo(f"3/4 train: {backbone}, {epochs} epochs, video-level split with no identity shared")
    report = run_training(dict(epochs=epochs, backbone=backbone, weights=weights, batch_size=16),
                          wait=True, progress=True)
    click.echo(format_report(report))
    if report["status"] != RUN_DONE:
        raise WorkFailed("")
    test_fake = next(
        (line.split(" ", 1)[1] for line in (dest / "List_of_testing_videos.txt").read_text().splitlines()
         if line.startswith("0 ")), None)
    if test_fake:
        click.echo("4/4 predict: a fake from the official test list, never seen in training")
        _, results = predict_videos([dest / test_fake], report["run_id"])
        for prediction in results:
            click.echo(format_prediction(prediction))
    click.echo(f"plots: {Path(report['artifacts']['plots'][0]).parent}/*.png "
               "(history, confusion matrix, ROC); `orchestrator runs` compares runs")
