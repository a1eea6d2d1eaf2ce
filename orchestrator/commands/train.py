"""`orchestrator train`, `report`, `runs`, `predict` and `export-model`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from orchestrator.options import aggregate_option, train_config_options
from orchestrator.output import (escape_name, format_evaluation, format_judgement, format_prediction, format_report,
                                 format_runs, json_option, print_json, print_judgements_csv, warn)
from shared.errors import InputError, WorkFailed
from shared.labels import RUN_FAILED, RUN_QUEUED, RUN_RUNNING


@click.command("train")
@train_config_options
@click.option("--dataset", "datasets", multiple=True, metavar="NAME",
              help="Train on this dataset (repeatable; split per dataset, then joined) [default: every dataset].")
@click.option("--wait", is_flag=True, help="With a broker configured: follow the run until it ends.")
@click.option("--resume", "resume_run", metavar="RUN",
              help="Take back a run whose worker stopped renewing its lease (or a queued run whose "
                   "message was lost) and resume it from its last epoch checkpoint.")
@json_option
def train_command(datasets, wait, resume_run, as_json, **options):
    """Split the crops, train on the gpu queue, evaluate on the held-out test part."""
    from orchestrator.jobs import resume_training, run_training

    if resume_run:
        report = resume_training(resume_run, wait=wait, progress=not as_json)
    else:
        report = run_training(options, wait=wait, progress=not as_json, datasets=list(datasets) or None)
    if as_json:
        print_json(report)
    else:
        click.echo(format_report(report))
        if report["status"] == RUN_RUNNING:
            click.echo(f"enqueued on queue 'gpu'; follow with `orchestrator report {report['run_id']}` or Flower")
    if report["status"] == RUN_FAILED:
        raise WorkFailed("")


@click.command("report")
@click.argument("run_id", required=False)
@aggregate_option
@click.option("--dataset-key", "dataset_keys", multiple=True, metavar="NAME=KEY",
              help="Name a dataset's place in the published table (shared/published_results.json) when its "
                   "format and name do not say, e.g. mycdf=celebdf-v2 (repeatable).")
@json_option
def report_command(run_id, aggregate, dataset_keys, as_json):
    """Metrics, split, leakage check and artifacts of a run (the latest by default)."""
    from orchestrator.database import open_database
    from shared.published import parse_dataset_keys
    from workers.planning.runs import find_run, run_report

    keys = parse_dataset_keys(dataset_keys)
    open_database()
    report = run_report(find_run(run_id), aggregate=aggregate and aggregate.lower(), dataset_keys=keys)
    if keys:  # the user named where the datasets stand: the run's page shows it too
        from workers.planning.runs import rewrite_report_html

        rewrite_report_html(report["run_id"], dataset_keys=keys)
    if as_json:
        print_json(report)
    else:
        click.echo(format_report(report))


@click.command("runs")
@json_option
def runs_command(as_json):
    """Every run with its headline metrics, side by side."""
    from orchestrator.database import open_database
    from workers.planning.runs import list_runs

    open_database()
    rows = list_runs()
    if as_json:
        print_json(rows)
    else:
        click.echo(format_runs(rows))


@click.command("evaluate")
@click.argument("run_id", required=False)
@click.option("--dataset", required=False, metavar="NAME", help="The dataset to score (`orchestrator datasets`).")
@click.option("--part", default=None, metavar="test|all",
              help="all: every video (default for a dataset the run did not train on); test: the run's test "
                   "part (the only one allowed on a dataset it trained on).")
@click.option("--wait", is_flag=True, help="With a broker configured: follow the evaluation until it ends.")
@aggregate_option
@json_option
def evaluate_command(run_id, dataset, part, wait, aggregate, as_json):
    """Score a run's model (the latest finished by default) on a dataset's crops, on the gpu queue."""
    from orchestrator.jobs import run_evaluation

    result = run_evaluation(run_id, dataset, part, wait=wait)
    if aggregate and result.get("metrics"):  # every rule was scored at the run's threshold for it
        from workers.training.aggregate import with_aggregation

        result["metrics"] = with_aggregation(result["metrics"], aggregate.lower())
    for message in result.pop("warnings"):
        warn(message)
    if as_json:
        print_json(result)
    else:
        click.echo(format_evaluation(result))
        if result["status"] in (RUN_QUEUED, RUN_RUNNING):
            click.echo(f"enqueued on queue 'gpu'; follow with `orchestrator report {result['run_id']}` or Flower")
    if result["status"] == RUN_FAILED:
        raise WorkFailed("")


@click.command("predict")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_id", help="The run whose model judges (default: the latest finished run).")
@click.option("--explain", "explain_dir", type=click.Path(path_type=Path), default=None,
              help="Write one contact sheet PNG per video into DIR: each crop with its Grad-CAM heatmap "
                   "(VIDEO.png, or VIDEO-2.png … when the name is taken: nothing is overwritten).")
@click.option("--queue", "on_queue", is_flag=True,
              help="Record each video as a judgement and judge it on the `predict` queue (one task per video; "
                   "embedded: local workers); VIDEOS may be folders. A video judged before by the same model "
                   "gets its stored verdict.")
@click.option("--force", is_flag=True, help="With --queue: judge again videos that have a stored verdict.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="the CPU count",
              help="With --queue: local worker processes (embedded mode).")
@click.option("--csv", "as_csv", is_flag=True, help="With --queue: print CSV instead of text.")
@aggregate_option
@json_option
def predict_command(videos, run_id, explain_dir, on_queue, force, workers, as_csv, aggregate, as_json):
    """Fake probability of each video from its face crops (made exactly as ingest makes them) under
    the run's video rule or --aggregate."""
    if not on_queue:
        if force or as_csv:
            raise InputError("--force and --csv go with --queue")
        return predict_in_process(videos, run_id, explain_dir, aggregate, as_json)
    if as_csv and as_json:
        raise InputError("--csv and --json are exclusive")
    if aggregate:  # a stored verdict is reused by model, so the queue judges by the run's own rule
        raise InputError("--aggregate goes without --queue (the queue judges by the run's own rule)")
    from orchestrator.judging import predict_on_queue

    run, results = predict_on_queue(list(videos), run_id, explain_dir=explain_dir, force=force, workers=workers,
                                    progress=not (as_json or as_csv))
    if as_json:
        print_json(results)
    elif as_csv:
        print_judgements_csv(results)
    else:
        click.echo(f"run {run.id} ({run.config['backbone']}, threshold {run.config.get('threshold', 0.5):.3f})")
        for result in results:
            click.echo(format_judgement(result))
    failed = [r for r in results if r.get("status", "failed") == "failed"]
    if failed:
        raise WorkFailed(f"{len(failed)} of {len(results)} videos could not be judged")


def predict_in_process(videos, run_id, explain_dir, aggregate, as_json) -> None:
    from orchestrator.jobs import predict_videos

    run, results = predict_videos(list(videos), run_id, explain_dir=explain_dir, aggregate=aggregate and aggregate.lower())
    if as_json:
        print_json(results)
    else:
        judged = next((r for r in results if r.get("aggregate")), {})
        click.echo(f"run {run.id} ({run.config['backbone']}, {judged.get('aggregate', 'mean')} video score, "
                   f"threshold {judged.get('threshold', run.config.get('threshold', 0.5)):.3f})")
        for result in results:
            click.echo(format_prediction(result))
    unreadable = [r for r in results if r.get("error")]
    if unreadable:  # the others were judged and printed; the command still failed for these
        raise WorkFailed(f"{len(unreadable)} of {len(results)} videos could not be read")


@click.command("export-model")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] DIR")
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite"]), default="savedmodel", show_default=True)
@json_option
def export_model_command(args, fmt, as_json):
    """Export a run's model (the latest finished by default) for serving: it takes raw RGB uint8
    crops of the run's image size and returns their fake probabilities."""
    from orchestrator.jobs import export_run_model

    if len(args) > 2:
        raise InputError("export-model takes [RUN_ID] DIR")
    run_id, dest = (None, Path(args[0])) if len(args) == 1 else (args[0], Path(args[1]))
    run, described = export_run_model(run_id, dest, fmt)
    if as_json:
        print_json(described)
        return
    size = described["input"]["shape"][1]
    click.echo(f"run {run.id}: {fmt} written to {escape_name(described['path'])} (input uint8 RGB crops (N, {size}, {size}, 3), "
               f"output fake probability (N, 1); threshold {described['threshold']}; see {escape_name(dest / 'serving.json')})")
