"""`orchestrator ingest DATASET`: a dataset's videos (Celeb-DF, FF++, DFDC, real/fake folders) to
recorded face crops."""

from __future__ import annotations

import os

import click

from orchestrator.options import ingest_params_options
from orchestrator.output import format_ingest, json_option, print_json, warn
from shared.errors import WorkFailed
from shared.ingest_params import IngestParams
from shared.labels import RUN_FAILED


@click.command("ingest")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="the CPU count",
              help="Local worker processes (embedded mode).")
@click.option("--format", "fmt", default="auto", show_default=True, metavar="auto|celebdf|ffpp|dfdc|folders",
              help="The dataset's layout; auto recognises it and says which it chose.")
@click.option("--name", default=None, help="The dataset's name in commands (--dataset NAME) [default: the folder's name].")
@click.option("--compression", default=None, metavar="raw|c23|c40",
              help="FF++: which compression's videos to read [default: c23, or what the last ingest used].")
@click.option("--splits", default=None, metavar="DIR",
              help="FF++: the folder of train.json / val.json / test.json [default: DATASET/splits].")
@click.option("--follow-outside-links", is_flag=True,
              help="Read videos that are symbolic links to files outside DATASET (left out, with a warning, otherwise).")
@ingest_params_options
@click.option("--retry-failed", is_flag=True, help="Process videos that failed before once more.")
@click.option("--wait", is_flag=True, help="With a broker configured: follow progress until done.")
@click.option("--then-train", is_flag=True, help="Start training once, when the last video is finished.")
@click.option("--train-option", "train_options", multiple=True, metavar="KEY=VALUE",
              help="A `train` option for --then-train, e.g. epochs=1 weights=none (repeatable).")
@json_option
def ingest_command(dataset, workers, fmt, name, compression, splits, follow_outside_links, retry_failed, wait, then_train, train_options,
                   as_json, **options):
    """Record every video of a dataset folder and turn each into face crops (one task per video)."""
    from orchestrator.jobs import check_train_options, run_ingest
    from shared.train_config import TrainConfig

    params = IngestParams.from_options(options)
    then = None
    if then_train or train_options:
        then = TrainConfig.parse_pairs(list(train_options))
        check_train_options(then)  # bad options fail now, before any video is processed
    result = run_ingest(dataset, params, workers=workers, retry_failed=retry_failed, wait=wait, progress=not as_json,
                        then_train=then, fmt=fmt, name=name, compression=compression, splits=splits,
                        follow_outside_links=follow_outside_links)
    if as_json:
        print_json(result)
    else:
        for message in result["warnings"]:
            warn(message)
        click.echo(format_ingest(result))
    stopped = result["status"].get("stopped")
    if stopped:
        raise WorkFailed(stopped_message(stopped))
    if result["status"]["failures"] or (result["training"] or {}).get("report", {}).get("status") == RUN_FAILED:
        raise WorkFailed("")


def stopped_message(stopped: list[dict]) -> str:
    """The command's error when a passing error (a full disk) left videos pending."""
    if any("free space" in (s.get("error") or "") for s in stopped):
        return (f"{len(stopped)} videos left pending: no space left for their crops in DATA_DIR; "
                "free space and run the same command again")
    return f"{len(stopped)} videos left pending: {stopped[0]['error']}"
