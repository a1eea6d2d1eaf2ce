"""`orchestrator demo`: the whole pipeline on sample data, start to finish, with a model that works."""

from __future__ import annotations

import os
from pathlib import Path

import click

from orchestrator.output import escape_name, format_ingest, format_prediction, format_report
from shared.errors import WorkFailed
from shared.labels import RUN_DONE, TEST_LIST_NAME
from shared.preprocessing import BACKBONES

# Chosen so that the model learns on a 2-core laptop in a minute or two (issue #11): the old demo's
# ResNet50 from scratch gave noise, MobileNetV2 from scratch a constant (docs/learning.md); `tiny`
# reaches a held-out video AUC near 1 on this sample data (tests/test_learning.py guards it).
# Measured: 64 videos with a frame every 0.5 s (about the same ~490 crops, half the identities)
# gave a held-out video AUC of 0.58 in one demo run and 0.86 on another split; 128 videos with a
# frame every second gave 0.986 and 1.0 (24 test videos).
DEMO_SAMPLE = dict(reals_per_folder=32, fakes=64, seconds=4.0)
DEMO_EVERY_S = 1.0
DEMO_TRAIN = dict(backbone="tiny", weights="none", image_size=64, epochs=15, batch_size=16, learning_rate=1e-3)


@click.command("demo")
@click.argument("dest", type=click.Path(path_type=Path), default=Path("sample"))
@click.option("--epochs", type=int, default=DEMO_TRAIN["epochs"], show_default=True)
@click.option("--backbone", type=click.Choice(BACKBONES), default=DEMO_TRAIN["backbone"], show_default=True)
@click.option("--image-size", type=int, default=DEMO_TRAIN["image_size"], show_default=True)
@click.option("--weights", default="none", show_default=True,
              help="none trains from scratch (works offline); imagenet downloads Keras's weights.")
@click.option("--workers", type=int, default=None, help="Local worker processes for ingest [default: CPU count].")
def demo_command(dest, epochs, backbone, image_size, weights, workers):
    """Make sample data, ingest it, train a small model, report, and judge a held-out real and fake."""
    from orchestrator.jobs import predict_videos, run_ingest, run_training
    from shared.ingest_params import IngestParams
    from shared.sample_data import make_sample_dataset
    from workers.planning.runs import held_out_examples

    if not (dest / TEST_LIST_NAME).exists():
        videos = 2 * DEMO_SAMPLE["reals_per_folder"] + DEMO_SAMPLE["fakes"]
        click.echo(f"1/4 writing a sample Celeb-DF dataset to {escape_name(dest)} ({videos} videos of {DEMO_SAMPLE['seconds']:g} s)")
        make_sample_dataset(dest, **DEMO_SAMPLE)
    else:
        click.echo(f"1/4 using the sample dataset in {escape_name(dest)}")
    click.echo(f"2/4 ingest: one task per video on local Celery workers, a frame every {DEMO_EVERY_S} s")
    result = run_ingest(str(dest), IngestParams.from_options({"every": DEMO_EVERY_S}),
                        workers=workers or os.cpu_count() or 1, wait=True, progress=True)
    click.echo(format_ingest(result))
    options = {**DEMO_TRAIN, "epochs": epochs, "backbone": backbone, "image_size": image_size, "weights": weights}
    click.echo(f"3/4 train: {backbone} from {'scratch' if weights == 'none' else weights}, {image_size}x{image_size} "
               f"px, up to {epochs} epochs (early stopping), batch {options['batch_size']}, lr {options['learning_rate']}; "
               "video-level split with no identity shared. (`orchestrator train` defaults to ResNet50 at 128 px.)")
    report = run_training(options, wait=True, progress=True)
    click.echo(format_report(report))
    if report["status"] != RUN_DONE:
        raise WorkFailed("")
    held_out = held_out_examples(report["run_id"])
    run_dir = Path(report["artifacts"]["dir"])
    if held_out:
        click.echo("4/4 predict: one real and one fake video from the held-out test set, never seen in training")
        _, results = predict_videos([path for _, path in held_out], report["run_id"], explain_dir=run_dir / "explain")
        for (truth, _), prediction in zip(held_out, results):
            verdict = "right" if prediction["label"] == truth else ("no verdict" if prediction["label"] is None else "WRONG")
            click.echo(f"{format_prediction(prediction)}\n  truth: {truth} -> {verdict}")
    click.echo(f"report: {escape_name(run_dir / 'report.html')}   pictures of why: {escape_name(run_dir / 'explain')}/*.png\n"
               f"training curves: tensorboard --logdir {escape_name(run_dir.parent)}   compare runs: orchestrator runs")
