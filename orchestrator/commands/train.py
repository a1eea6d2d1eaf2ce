"""`orchestrator train`, `report`, `runs` and `predict`."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import click
from tqdm import tqdm

from orchestrator.errors import InputError


class TrainingProgress:
    """A bar over the batches of the current epoch, re-labelled at each epoch."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.epoch = enabled, None, None

    def __call__(self, event: dict | None) -> None:
        if not self.enabled or not event:
            return
        if event.get("phase") == "evaluate":
            self.close()
            return
        epoch, batches = event.get("epoch"), event.get("batches")
        if epoch is None or not batches:
            return
        if epoch != self.epoch:
            self.close()
            self.epoch = epoch
            self.bar = tqdm(total=batches, unit="batch", desc=f"epoch {epoch}/{event.get('epochs')}",
                            dynamic_ncols=True)
        batch = batches if event.get("phase") == "epoch_end" else event.get("batch", 0)
        self.bar.update(max(0, batch - self.bar.n))
        shown = {k: round(event[k], 4) for k in ("loss", "accuracy", "val_loss", "val_accuracy")
                 if event.get(k) is not None}
        if shown:
            self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_training(options: dict, *, wait: bool, progress: bool) -> dict:
    """Plan the run, dispatch it to the gpu queue, and (embedded mode, or --wait) follow it."""
    from db.session import init_db
    from orchestrator.training import dispatch_run, find_run, plan_run, run_report
    from shared.settings import get_settings

    settings = get_settings()
    init_db()
    if settings.embedded and str(options.get("weights", "imagenet")).lower() == "imagenet":
        check_imagenet_weights(options.get("backbone") or "resnet50")
    run_id, _ = plan_run(options)
    dispatch_run(run_id, find_run(run_id).config)
    if settings.embedded or wait:
        follow_run(run_id, progress=progress)
    return run_report(find_run(run_id))


def follow_run(run_id: str, *, progress: bool) -> None:
    """Wait for a run to end; in embedded mode, run the local gpu-queue worker meanwhile."""
    from orchestrator.embedded import local_worker_when_embedded
    from orchestrator.training import wait_for_run

    # One process with every core, recycled after the run (that frees the model's memory).
    with local_worker_when_embedded("gpu", 1, "train", max_tasks_per_child=1, threads=0) as worker, \
            closing(TrainingProgress(progress)) as bar:
        wait_for_run(run_id, on_tick=bar, check=worker.check_alive if worker else None)


def check_imagenet_weights(backbone: str) -> None:
    """Offline and no cached ImageNet weights: say so now, not after a worker has started."""
    from shared.quiet import load_tensorflow

    load_tensorflow()
    from workers.training.models import WeightsUnavailableError, build_model

    try:
        build_model(backbone, weights="imagenet")
    except WeightsUnavailableError as exc:
        raise InputError(str(exc)) from None


def format_report(report: dict) -> str:
    m, s, c = report["metrics"], report["split"] or {}, report["config"]

    def num(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"run {report['run_id']}: {report['status']}  ({c.get('backbone')}, weights {c.get('weights')}, "
        f"{c.get('epochs')} epochs, batch {c.get('batch_size')}, lr {c.get('learning_rate')})",
        f"split {s.get('strategy')}: train {s.get('train_videos')} videos / {s.get('train_crops')} crops, "
        f"val {s.get('val_videos')} / {s.get('val_crops')}, test {s.get('test_videos')} / {s.get('test_crops')}",
        f"leakage check: {s.get('shared_videos')} videos and {s.get('shared_sources')} source identities "
        f"shared by training and test" + ("  (THIS SPLIT LEAKS: scores are optimistic)" if s.get("leaks") else ""),
    ]
    if report["status"] == "done":
        warnings = m.get("warnings") or []
        lines += [f"WARNING: {w}" for w in warnings]
        lines += [
            f"test videos ({m.get('n_videos')}): auc {num(m.get('video_auc'))}  ap {num(m.get('video_ap'))}  "
            f"eer {num(m.get('video_eer'))}   (threshold-free)",
            f"test crops ({m.get('n')}):  auc {num(m.get('auc'))}  ap {num(m.get('ap'))}  eer {num(m.get('eer'))}  "
            f"loss {num(m.get('loss'))}",
            f"threshold {num(m.get('threshold'))}: {m.get('threshold_rule') or 'fixed'}",
            f"  videos: accuracy {num(m.get('video_accuracy'))}  precision {num(m.get('video_precision'))}  "
            f"recall {num(m.get('video_recall'))}  confusion [[tn, fp], [fn, tp]] {m.get('video_confusion_matrix')}",
            f"  crops:  accuracy {num(m.get('accuracy'))}  precision {num(m.get('precision'))}  "
            f"recall {num(m.get('recall'))}  f1 {num(m.get('f1'))}  confusion {m.get('confusion_matrix')}",
            f"model: {report['artifacts'].get('model')}",
            "plots: " + ", ".join(report["artifacts"].get("plots", [])),
        ]
        if report["artifacts"].get("report_html"):
            lines.append(f"report: {report['artifacts']['report_html']}   "
                         f"tensorboard --logdir {Path(report['artifacts']['dir']).parent}")
    elif report.get("error"):
        lines.append(f"error: {report['error']}")
    return "\n".join(lines)


@click.command("train")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=1e-4, show_default=True)
@click.option("--split", type=click.Choice(["video", "official", "frame"]), default="video", show_default=True,
              help="video: grouped by source identity (no leak); official: List_of_testing_videos.txt; "
                   "frame: random over crops (leaks, for comparison with the old notebook).")
@click.option("--test-size", type=float, default=0.2, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none, or a local notop .h5 PATH.")
@click.option("--class-weight", type=click.Choice(["balanced", "none"]), default="balanced", show_default=True)
@click.option("--backbone", type=click.Choice(["resnet50", "efficientnetb0", "mobilenetv2", "tiny"]),
              default="resnet50", show_default=True,
              help="tiny: a small CNN that learns from scratch on a CPU (needs --weights none).")
@click.option("--image-size", type=int, default=128, show_default=True, help="Model input side in pixels.")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on a GPU (ignored on a CPU).")
@click.option("--cache", default="memory", show_default=True,
              help="Decoded crops between epochs: memory, none, or a local DIR for a file cache.")
@click.option("--wait", is_flag=True, help="With a broker configured: follow the run until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def train_command(epochs, batch_size, learning_rate, split, test_size, seed, weights, class_weight, backbone,
                  image_size, mixed_precision, cache, wait, as_json):
    """Split the crops, train on the gpu queue, evaluate on the held-out test part."""
    options = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, split=split,
                   test_size=test_size, seed=seed, weights=weights, class_weight=class_weight,
                   backbone=backbone, image_size=image_size, mixed_precision=mixed_precision, cache=cache)
    report = run_training(options, wait=wait, progress=not as_json)
    if as_json:
        from orchestrator.cli import print_json

        print_json(report)
    else:
        click.echo(format_report(report))
        if report["status"] == "running":
            click.echo(f"enqueued on queue 'gpu'; follow with `orchestrator report {report['run_id']}` or Flower")
    if report["status"] == "failed":
        raise SystemExit(1)


@click.command("report")
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True)
def report_command(run_id, as_json):
    """Metrics, split, leakage check and artifacts of a run (the latest by default)."""
    from db.session import init_db
    from orchestrator.training import find_run, run_report

    init_db()
    report = run_report(find_run(run_id))
    if as_json:
        from orchestrator.cli import print_json

        print_json(report)
    else:
        click.echo(format_report(report))


@click.command("runs")
@click.option("--json", "as_json", is_flag=True)
def runs_command(as_json):
    """Every run with its headline metrics, side by side."""
    from db.session import init_db
    from orchestrator.training import list_runs

    init_db()
    rows = list_runs()
    if as_json:
        from orchestrator.cli import print_json

        print_json(rows)
        return
    if not rows:
        click.echo("no runs yet")
        return
    header = f"{'run':<22} {'status':<8} {'backbone':<15} {'split':<9} {'ep':>3} {'acc':>6} {'auc':>6} {'eer':>6} {'v_auc':>6} {'v_acc':>6}"
    click.echo(header)

    def num(value):
        return f"{value:6.3f}" if isinstance(value, (int, float)) else f"{'-':>6}"

    for r in rows:
        split = r["split"] + ("*" if r["leaks"] else "")
        status = r["status"] + ("!" if r.get("warnings") else "")
        click.echo(f"{r['run_id']:<22} {status:<8} {r['backbone']:<15} {split:<9} {r['epochs']:>3} "
                   f"{num(r['accuracy'])} {num(r['auc'])} {num(r['eer'])} {num(r['video_auc'])} {num(r['video_accuracy'])}")
    if any(r["leaks"] for r in rows):
        click.echo("* the split leaks (videos or identities on both sides): its scores are optimistic")
    if any(r.get("warnings") for r in rows):
        click.echo("! the run carries warnings (constant model, one-class parts): `orchestrator report RUN_ID`")


@click.command("predict")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_id", help="The run whose model judges (default: the latest finished run).")
@click.option("--explain", "explain_dir", type=click.Path(path_type=Path), default=None,
              help="Write one contact sheet PNG per video into DIR: each crop with its Grad-CAM heatmap.")
@click.option("--json", "as_json", is_flag=True)
def predict_command(videos, run_id, explain_dir, as_json):
    """Fake probability of each video: mean over its face crops, made exactly as ingest makes them."""
    run, results = predict_videos(videos, run_id, explain_dir=explain_dir)
    if as_json:
        from orchestrator.cli import print_json

        print_json(results)
        return
    click.echo(f"run {run.id} ({run.config['backbone']}, threshold {run.config.get('threshold', 0.5):.3f})")
    for result in results:
        click.echo(format_prediction(result))


def predict_videos(videos: list[Path], run_id: str | None = None, explain_dir: Path | None = None):
    """(run, [{"video", "fake_probability", "label", "faces"}, ...]); bad input raises InputError."""
    from db.session import init_db
    from orchestrator.training import find_run
    from workers.video import VideoError, open_video

    for path in videos:  # every input is checked before anything heavy is loaded
        try:
            capture, _ = open_video(path)
            capture.release()
        except VideoError as exc:
            raise InputError(f"{path}: {exc}") from None
    init_db()
    run = find_run(run_id) if run_id else latest_finished_run()
    if run.status != "done":
        raise InputError(f"run {run.id} is {run.status}: only a finished run can predict")
    from shared.quiet import load_tensorflow
    from workers.ingest import IngestParams

    load_tensorflow()
    from workers.predict import judge_video, load_run_model

    params = IngestParams(**run.config["ingest"]) if run.config.get("ingest") else IngestParams.from_settings()
    model = load_run_model(run.artifacts["model"])
    results = []
    for path in videos:
        try:
            results.append(judge_video(path, model, backbone=run.config["backbone"], params=params,
                                       threshold=run.config.get("threshold", 0.5), explain_dir=explain_dir))
        except VideoError as exc:
            raise InputError(f"{path}: {exc}") from None
    return run, results


def format_prediction(result: dict) -> str:
    if result["label"] is None:
        return f"{result['video']}: no face found, no verdict"
    text = (f"{result['video']}: {result['label']} (fake probability {result['fake_probability']:.3f}, "
            f"threshold {result.get('threshold', 0.5):.3f}, {result['faces']} faces)")
    if result.get("explanation"):
        text += f"\n  why: {result['explanation']}"
    return text


def latest_finished_run():
    from sqlalchemy import select

    from db.models import Run
    from db.session import session_scope

    with session_scope() as session:
        run = session.scalar(select(Run).where(Run.status == "done").order_by(Run.created_at.desc()).limit(1))
        if run is None:
            raise InputError("no finished training run: `orchestrator train` makes one")
        session.expunge(run)
        return run


@click.command("export-model")
@click.argument("args", nargs=-1, required=True, metavar="[RUN_ID] DIR")
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite"]), default="savedmodel", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def export_model_command(args, fmt, as_json):
    """Export a run's model (the latest finished by default) for serving: it takes raw RGB uint8
    crops of the run's image size and returns their fake probabilities."""
    if len(args) > 2:
        raise InputError("export-model takes [RUN_ID] DIR")
    run_id, dest = (None, Path(args[0])) if len(args) == 1 else (args[0], Path(args[1]))
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: exists and is not an empty directory")
    from db.session import init_db
    from orchestrator.training import find_run

    init_db()
    run = find_run(run_id) if run_id else latest_finished_run()
    if run.status != "done":
        raise InputError(f"run {run.id} is {run.status}: only a finished run can be exported")
    from shared.quiet import load_tensorflow

    load_tensorflow()
    from workers.predict import load_run_model
    from workers.training.export import export_model

    model = load_run_model(run.artifacts["model"])
    described = export_model(model, dest, fmt, backbone=run.config["backbone"],
                             threshold=run.config.get("threshold"), run_id=run.id)
    if as_json:
        from orchestrator.cli import print_json

        print_json(described)
        return
    size = described["input"]["shape"][1]
    click.echo(f"run {run.id}: {fmt} written to {described['path']} (input uint8 RGB crops (N, {size}, {size}, 3), "
               f"output fake probability (N, 1); threshold {described['threshold']}; see {dest / 'serving.json'})")
