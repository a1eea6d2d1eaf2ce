"""What commands print: JSON for machines, text and progress bars for people."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import click
from tqdm import tqdm

from shared.labels import FINISHED_STATUSES, RUN_DONE, RUNNING
from shared.train_config import schedule_part, trained_part

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control and format characters (a newline, a carriage return, ESC, a right-to-left override), line
# and paragraph separators, and the surrogates Python gives undecodable bytes of a file name.
_UNPRINTABLE = ("Cc", "Cf", "Cs", "Zl", "Zp")


def escape_name(value) -> str:
    """``value`` as text that stays on its line: a file or dataset name with a newline in it cannot
    forge a line of our output (``a\\nb``). Every name and message in text output goes through here;
    JSON output is left as it is (its strings are escaped already)."""
    text = str(value)
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) in _UNPRINTABLE:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def warn(message: str) -> None:
    click.echo(f"warning: {escape_name(message)}", err=True)


def warn_database_unreachable(exc: Exception) -> None:
    """Printed while a wait rides out a database restart; the workers retry on their own."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    print(f"warning: database unreachable ({reason}); retrying", file=sys.stderr)


class IngestProgress:
    """Finished videos out of the dataset's total, with the counts per outcome."""

    def __init__(self, total: int, enabled: bool):
        self.bar = tqdm(total=total, unit="video", desc="ingest", disable=not enabled, dynamic_ncols=True)

    def __call__(self, counts: dict[str, int]) -> None:
        finished = sum(n for status, n in counts.items() if status in FINISHED_STATUSES)
        self.bar.update(finished - self.bar.n)
        shown = {k: counts.get(k, 0) for k in (RUNNING, *FINISHED_STATUSES)}
        if counts.get("held"):  # left pending by a full disk (workers.planning.ingest.HELD)
            shown["held"] = counts["held"]
        self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        self.bar.close()


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


def parent_location(location: str) -> str:
    """The folder holding a local path or an object-store URL (``Path`` would turn ``s3://b/k`` into
    ``s3:/b``)."""
    location = str(location).rstrip("/")
    if "://" in location:
        return location.rpartition("/")[0]
    return str(Path(location).parent)


def format_report(report: dict) -> str:
    m, s, c = report["metrics"], report["split"] or {}, report["config"]

    def num(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"run {report['run_id']}: {report['status']}  ({c.get('backbone')}, weights {c.get('weights')}, "
        f"{c.get('image_size')} px, {trained_part(c)}, {c.get('epochs')} epochs, batch {c.get('batch_size')}, {schedule_part(c)})",
        f"split {s.get('strategy')}: train {s.get('train_videos')} videos / {s.get('train_crops')} crops, "
        f"val {s.get('val_videos')} / {s.get('val_crops')}, test {s.get('test_videos')} / {s.get('test_crops')}",
        f"leakage check: {s.get('shared_videos')} videos and {s.get('shared_sources')} source identities "
        f"shared by training and test" + ("  (THIS SPLIT LEAKS: scores are optimistic)" if s.get("leaks") else ""),
    ]
    changed = report.get("data_changed")
    if changed:
        examples = ", ".join(escape_name(v) for v in changed.get("examples", []))
        lines.append(f"DATA CHANGED since this run was planned: {changed['videos']} videos done again ({examples}"
                     f"{', ...' if changed['videos'] > len(changed.get('examples', [])) else ''}), "
                     f"{changed['crops']} of its crops replaced (first {changed.get('first_at')}); "
                     "its model and scores are of the data it had")
    unfinished = s.get("unfinished_videos") or {}
    if unfinished:
        names = [f"{dataset}/{video}" for dataset, videos in unfinished.items() for video in videos]
        lines.append(f"--partial: trained while {len(names)} videos were unfinished: "
                     + ", ".join(names[:5]) + (f" … (+{len(names) - 5}; `report --json` lists them)" if len(names) > 5 else ""))
    if s.get("fakes") in ("sbi", "both"):
        lines.append(format_fakes(s, m))
    if report["status"] == RUN_DONE:
        if c.get("datasets"):
            lines.insert(1, f"datasets: {', '.join(escape_name(d) for d in c['datasets'])}")
        warnings = m.get("warnings") or []
        lines += [f"WARNING: {escape_name(w)}" for w in warnings]
        rule = m.get("aggregate") or c.get("aggregate") or "mean"
        lines += [
            f"test videos ({m.get('n_videos')}, {rule} of crops): auc {num(m.get('video_auc'))}  "
            f"ap {num(m.get('video_ap'))}  eer {num(m.get('video_eer'))}   (threshold-free)",
            f"test crops ({m.get('n')}):  auc {num(m.get('auc'))}  ap {num(m.get('ap'))}  eer {num(m.get('eer'))}  "
            f"loss {num(m.get('loss'))}",
            f"threshold {num(m.get('threshold'))}: {m.get('threshold_rule') or 'fixed'}",
            f"  videos: accuracy {num(m.get('video_accuracy'))}  precision {num(m.get('video_precision'))}  "
            f"recall {num(m.get('video_recall'))}  confusion [[tn, fp], [fn, tp]] {m.get('video_confusion_matrix')}",
            f"  crops:  accuracy {num(m.get('accuracy'))}  precision {num(m.get('precision'))}  "
            f"recall {num(m.get('recall'))}  f1 {num(m.get('f1'))}  confusion {m.get('confusion_matrix')}",
            f"model: {escape_name(report['artifacts'].get('model'))}",
            "plots: " + ", ".join(escape_name(p) for p in report["artifacts"].get("plots", [])),
        ]
        if report["artifacts"].get("report_html"):
            lines.append(f"report: {escape_name(report['artifacts']['report_html'])}   "
                         f"tensorboard --logdir {escape_name(parent_location(report['artifacts']['dir']))}")
        lines += [format_evaluation(e, short=True) for e in report.get("evaluations", [])]
        if report.get("published"):
            from shared.published import format_comparison

            lines.append("beside the published numbers of the same train -> test pair:")
            for entry in report["published"]:
                lines += ["  " + line for line in format_comparison(entry)]
    elif report.get("error"):
        lines.append(f"error: {escape_name(report['error'])}")
    return "\n".join(lines)


def format_fakes(split: dict, metrics: dict) -> str:
    """What the training side learnt fakes from: `train --fakes sbi|both`."""
    text = (f"fakes {split['fakes']}: the training part holds {split.get('train_fake_videos')} fake videos "
            f"(validation {split.get('val_fake_videos')}, test {split.get('test_fake_videos')}")
    if split.get("dropped_fake_videos"):
        text += f"; {split['dropped_fake_videos']} left the training side"
    text += ")"
    made = metrics.get("pseudo_fakes")
    if made:
        text += (f"; self-blended pseudo-fakes: {made['per_epoch']} per epoch, {made['train_made']} made over "
                 f"{made['epochs_run']} epochs, {made['validation']} in validation")
    return text


def format_runs(rows: list[dict]) -> str:
    if not rows:
        return "no runs yet"

    def num(value):
        return f"{value:6.3f}" if isinstance(value, (int, float)) else f"{'-':>6}"

    lines = [f"{'run':<22} {'status':<8} {'backbone':<15} {'split':<9} {'ep':>3} {'acc':>6} {'auc':>6} "
             f"{'eer':>6} {'v_auc':>6} {'v_acc':>6}"]
    for r in rows:
        split = r["split"] + ("*" if r["leaks"] else "")
        status = r["status"] + ("!" if r.get("warnings") else "")
        line = (f"{r['run_id']:<22} {status:<8} {r['backbone']:<15} {split:<9} {r['epochs']:>3} "
                f"{num(r['accuracy'])} {num(r['auc'])} {num(r['eer'])} {num(r['video_auc'])} "
                f"{num(r['video_accuracy'])}")
        # Cross-dataset video AUC beside the run's own: "  celebdf(all) v_auc 0.612".
        for e in r.get("evaluations") or []:
            line += f"  {escape_name(e['dataset'])}({e['part']}) v_auc {num((e['metrics'] or {}).get('video_auc')).strip()}"
        lines.append(line)
    if any(r["leaks"] for r in rows):
        lines.append("* the split leaks (videos or identities on both sides): its scores are optimistic")
    if any(r.get("warnings") for r in rows):
        lines.append("! the run carries warnings (constant model, one-class parts): `orchestrator report RUN_ID`")
    return "\n".join(lines)


def format_prediction(result: dict) -> str:
    video = escape_name(result["video"])
    if result.get("error"):
        return f"{video}: not judged: {escape_name(result['error'])}"
    if result["label"] is None:
        return f"{video}: no face found, no verdict"
    text = (f"{video}: {result['label']} (fake probability {result['fake_probability']:.3f}, "
            f"threshold {result.get('threshold', 0.5):.3f}, {result['faces']} faces)")
    if result.get("explanation"):
        text += f"\n  why: {escape_name(result['explanation'])}"
    return text


def format_status(status: dict) -> str:
    videos = status["videos"]
    lines = [
        f"videos: {videos['total']} ({videos['by_label']['real']} real, {videos['by_label']['fake']} fake)",
        "  " + ", ".join(f"{k} {v}" for k, v in videos["by_status"].items()),
        f"crops: {status['crops']}",
    ]
    lines += [f"failed: {escape_name(failure['video'])}: {escape_name(failure['error'])}"
              for failure in status["failures"]]
    lines += [f"warning: {escape_name(w['video'])}: {escape_name(w['warning'])}" for w in status.get("warnings", [])]
    lines += [f"left pending: {escape_name(s['video'])}: {escape_name(s['error'])}" for s in status.get("stopped", [])]
    return "\n".join(lines)


def format_ingest(result: dict) -> str:
    status = result["status"]
    videos = status["videos"]
    by = videos["by_status"]
    lines = [
        f"dataset {escape_name(repr(result['name']))}: {result['format']} layout"
        + (" (recognised; --format to choose)" if result.get("format_detected") else ""),
        f"{escape_name(result['dataset'])}: {videos['total']} videos ({videos['by_label']['real']} real, "
        f"{videos['by_label']['fake']} fake), {result['new_videos']} new, "
        + (f"{result['changed_videos']} changed on disk (done again), " if result.get("changed_videos") else "")
        + f"{result['enqueued']} "
        f"{'processed now' if result['followed'] else 'enqueued'}",
        f"done {by['done']}, no face {by['no_face']}, failed {by['failed']}, "
        f"pending {by['pending']}, running {by['running']}; {status['crops']} crops",
    ]
    lines += [f"  failed: {escape_name(failure['video'])}: {escape_name(failure['error'])}"
              for failure in status["failures"][:10]]
    lines += [f"  warning: {escape_name(w['video'])}: {escape_name(w['warning'])}"
              for w in status.get("warnings", [])[:10]]
    lines += [f"  left pending: {escape_name(s['video'])}: {escape_name(s['error'])}"
              for s in status.get("stopped", [])[:10]]
    if len(status["failures"]) > 10:
        lines.append(f"  ... and {len(status['failures']) - 10} more (orchestrator status --json)")
    if not result["followed"] and result["enqueued"]:
        lines.append("enqueued on queue 'cpu'; follow with `orchestrator status`, Flower, or re-run with --wait")
    training = result.get("training")
    if training:
        lines.append(format_report(training["report"]) if training.get("report") else training["note"])
    return "\n".join(lines)


def format_datasets(rows: list[dict]) -> str:
    if not rows:
        return "no dataset yet: `orchestrator ingest PATH` records one"
    lines = [f"{'name':<20} {'format':<8} {'videos':>6} {'real':>5} {'fake':>5} {'test':>5} {'crops':>6}  sampling  root"]
    for r in rows:
        params = r["params"] or {}
        sampling = (f"{params['frames']} frames" if params.get("frames") else
                    f"every {params.get('every')} s" if params else "-")
        if params.get("align"):
            sampling += ", aligned"
        if params.get("protocol"):
            sampling = f"{params['protocol']} ({sampling}, {params.get('size')} px)"
        lines.append(f"{escape_name(r['name']):<20} {r['format']:<8} {r['videos']:>6} {r['by_label']['real']:>5} "
                     f"{r['by_label']['fake']:>5} {r['official_test_videos']:>5} {r['crops']:>6}  {sampling}  "
                     f"{escape_name(r['root'])}")
    return "\n".join(lines)


def format_evaluation(evaluation: dict, short: bool = False) -> str:
    m = evaluation.get("metrics") or {}

    def num(value):
        return "n/a" if value is None else f"{value:.4f}"

    head = f"on {escape_name(evaluation['dataset'])} ({evaluation['part']}, {evaluation['videos']} videos, {evaluation['crops']} crops)"
    if evaluation["status"] != RUN_DONE:
        return f"{head}: {evaluation['status']}" + (f": {escape_name(evaluation['error'])}" if evaluation.get("error")
                                                     else "")
    line = (f"{head}: video auc {num(m.get('video_auc'))}  crop auc {num(m.get('auc'))}  "
            f"eer {num(m.get('eer'))}  video accuracy {num(m.get('video_accuracy'))}")
    if short:
        return line
    return "\n".join([f"run {evaluation['run_id']} " + line,
                      f"crops: accuracy {num(m.get('accuracy'))}  ap {num(m.get('ap'))}  loss {num(m.get('loss'))}  "
                      f"confusion matrix [[tn, fp], [fn, tp]]: {m.get('confusion_matrix')}",
                      f"plot: {escape_name(evaluation.get('roc'))}"])


JUDGEMENT_CSV_COLUMNS = ("video", "status", "verdict", "fake_probability", "threshold", "faces", "id", "run_id",
                         "model_sha256", "video_sha256", "reused_from", "error")


def format_judgement(result: dict) -> str:
    """One line per video of `predict --queue` (its judgement, or why it was not judged)."""
    if "status" not in result:
        return f"{result['video']}: not judged: {result['error']}"
    if result["status"] == "failed":
        return f"{result['video']}: failed: {result['error']} (judgement {result['id']})"
    if result["status"] == "no_face":
        return f"{result['video']}: no face found, no verdict (judgement {result['id']})"
    text = (f"{result['video']}: {result['verdict']} (fake probability {result['fake_probability']:.3f}, "
            f"threshold {result['threshold']:.3f}, {result['faces']} faces; judgement {result['id']}"
            + (", stored verdict" if result.get("stored") or result.get("reused_from") else "") + ")")
    if result.get("explanation"):
        text += f"\n  why: {result['explanation']}"
    return text


def print_judgements_csv(results: list[dict]) -> None:
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=JUDGEMENT_CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for result in results:
        model = result.get("model") or {}
        writer.writerow({**result, "run_id": model.get("run_id"), "model_sha256": model.get("sha256")})
