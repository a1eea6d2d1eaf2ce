"""``DATA_DIR/runs/<id>/report.html``: one self-contained page a person opens to judge a run.

Self-contained: every image is inlined as a base64 data URI and there is no script or style
from outside, so the file can be mailed, attached to a ticket or opened offline. Order:
warnings, threshold-free numbers (AUC, AP, EER; videos first), then the numbers at the run's
threshold, the split and its leakage check, the curves, and evaluations on other datasets.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Iterable

from shared.labels import RUN_DONE
from shared.train_config import schedule_part, trained_part

REPORT_FILE = "report.html"
# Images of a run, in the order the page shows them, with their captions.
RUN_IMAGES = (
    ("history.png", "Training curves (train and validation, per epoch)"),
    ("roc.png", "ROC curve of the test crops, with the equal error rate"),
    ("video_confusion_matrix.png", "Confusion matrix of the test videos, at the run's threshold"),
    ("confusion_matrix.png", "Confusion matrix of the test crops, at the run's threshold"),
)
# `train --fakes sbi|both`: real training crops beside their pseudo-fakes (workers/training/sbi.py).
SBI_IMAGE = ("sbi_examples.png", "What the model is trained to find: real crops beside their self-blended "
                                 "pseudo-fakes and the blend masks")
THRESHOLD_FREE = (("auc", "ROC AUC"), ("ap", "average precision"), ("eer", "equal error rate"))
AT_THRESHOLD = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
                ("loss", "log loss"))

# Marks every <img> as loaded or broken once the page has loaded, so a headless browser's DOM
# dump tells whether the page rendered with every image (the report test reads it).
_IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-images-loaded", ok);
});
</script>"""

_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { background: #fde8e8; border: 2px solid #c0392b; padding: 0.6em 1em; color: #8b1a1a; }
.ok { background: #e8f6ec; border: 1px solid #2e8b57; padding: 0.4em 1em; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #ddd; } figcaption { font-size: 0.85em; color: #555; }
code { background: #f6f6f6; padding: 0 3px; }
</style>"""


def write_report_html(report: dict, run_dir: str | Path, evaluations: Iterable[dict] = ()) -> Path:
    """Write report.html into ``run_dir`` from ``report`` (what `orchestrator report --json`
    prints) and the PNGs found there. ``evaluations``: ``[{"dataset", "metrics"}...]`` of the
    run's model on other datasets. Returns the path."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    path.write_text(render_report_html(report, run_dir, evaluations), encoding="utf-8")
    return path


def render_report_html(report: dict, run_dir: str | Path, evaluations: Iterable[dict] = ()) -> str:
    run_dir = Path(run_dir)
    m = report.get("metrics") or {}
    c = report.get("config") or {}
    s = report.get("split") or {}
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Run {e(str(report.get('run_id')))}</title>",
        _STYLE,
        "</head><body>",
        f"<h1>Run {e(str(report.get('run_id')))}: {e(str(report.get('status')))}</h1>",
        f"<p>{e(str(c.get('backbone')))}, weights {e(str(c.get('weights')))}, image size {e(str(c.get('image_size')))}, "
        f"{e(trained_part(c))}, {e(str(c.get('epochs')))} epochs (ran {e(str(m.get('epochs_run')))}, best {e(str(m.get('best_epoch')))}), "
        f"batch {e(str(c.get('batch_size')))}, {e(schedule_part(c))}; "
        f"created {e(str(report.get('created_at')))}, finished {e(str(report.get('finished_at')))}</p>",
    ]
    warnings = m.get("warnings") or []
    if warnings:
        parts.append('<div class="warn"><strong>Do not trust this run as it stands:</strong><ul>'
                     + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul></div>")
    elif report.get("status") == RUN_DONE:
        parts.append('<p class="ok">No warning: the model does not give every crop the same score, and the '
                     "validation and test parts hold both classes.</p>")
    if report.get("error"):
        parts.append(f'<div class="warn">error: {e(str(report["error"]))}</div>')

    parts.append("<h2>Held-out test set: threshold-free</h2>")
    parts.append(_metric_table(m, THRESHOLD_FREE))
    threshold = m.get("threshold")
    parts.append(f"<h2>At the run's threshold ({_num(threshold)})</h2>")
    parts.append(f"<p>Rule: {e(str(m.get('threshold_rule') or c.get('threshold_rule') or 'fixed'))}. "
                 f"A video is called fake when its score ({e(str(m.get('aggregate') or c.get('aggregate') or 'mean'))} of "
                 "its crops' fake probabilities) is at or above it.</p>")
    parts.append(_metric_table(m, AT_THRESHOLD))
    parts.append(_aggregation_table(m))
    parts.append("<p>Confusion matrices <code>[[tn, fp], [fn, tp]]</code>: videos "
                 f"{e(str(m.get('video_confusion_matrix')))}, crops {e(str(m.get('confusion_matrix')))}</p>")

    parts.append("<h2>Split and leakage check</h2>")
    rows = "".join(
        f"<tr><th>{part}</th><td class='num'>{e(str(s.get(f'{part}_videos')))}</td>"
        f"<td class='num'>{e(str(s.get(f'{part}_crops')))}</td></tr>" for part in ("train", "val", "test"))
    parts.append(f"<p>Strategy: <code>{e(str(s.get('strategy')))}</code></p>"
                 f"<table><tr><th>part</th><th>videos</th><th>crops</th></tr>{rows}</table>")
    leak = (f"{e(str(s.get('shared_videos')))} videos and {e(str(s.get('shared_sources')))} source identities are "
            "shared by the training side (train + validation) and the test set")
    parts.append(f'<p class="{"warn" if s.get("leaks") else "ok"}">Leakage check: {leak}'
                 + (" &mdash; THIS SPLIT LEAKS: the scores are optimistic." if s.get("leaks") else ".") + "</p>")

    if s.get("fakes") in ("sbi", "both"):
        made = m.get("pseudo_fakes") or {}
        parts.append(f"<p>Fakes learnt from: <code>{e(str(s['fakes']))}</code>. The training part holds "
                     f"{e(str(s.get('train_fake_videos')))} fake videos ({e(str(s.get('dropped_fake_videos') or 0))} "
                     "left the training side); self-blended pseudo-fakes: "
                     f"{e(str(made.get('per_epoch')))} per epoch, {e(str(made.get('train_made')))} made over "
                     f"{e(str(made.get('epochs_run')))} epochs, {e(str(made.get('validation')))} in validation.</p>")
        parts.append(_figure(run_dir / SBI_IMAGE[0], SBI_IMAGE[1]))

    parts.append("<h2>Curves</h2>")
    for name, caption in RUN_IMAGES:
        parts.append(_figure(run_dir / name, caption))

    evaluations = list(evaluations) + _saved_evaluations(run_dir)
    if evaluations:
        parts.append("<h2>Evaluations on other datasets</h2>")
        header = "".join(f"<th>{label}</th>" for label in
                         ("dataset", "videos", "video AUC", "video AP", "video EER", "crop AUC", "video accuracy"))
        body = "".join(
            f"<tr><td>{e(str(ev.get('dataset')))}</td><td class='num'>{e(str((ev.get('metrics') or {}).get('n_videos')))}</td>"
            + "".join(f"<td class='num'>{_num((ev.get('metrics') or {}).get(k))}</td>"
                      for k in ("video_auc", "video_ap", "video_eer", "auc", "video_accuracy")) + "</tr>"
            for ev in evaluations)
        parts.append(f"<table><tr>{header}</tr>{body}</table>")

    published = report.get("published") or []
    if published:
        parts.append("<h2>Beside the published numbers</h2><p>The same train &rarr; test pair as published "
                     "(shared/published_results.json, each number with its source).</p>")
        for entry in published:
            rows = (f"<tr><td><strong>this run</strong> (on {e(str(entry['dataset']))}, {e(str(entry['aggregate']))})"
                    f"</td><td class='num'>{_num(entry['frame_auc'])}</td><td class='num'>{_num(entry['video_auc'])}"
                    "</td><td></td></tr>")
            for row in entry["published"]:
                frame, video = (row["auc"], None) if row["level"] == "frame" else (None, row["auc"])
                rows += (f"<tr><td>{e(row['method'])}</td><td class='num'>{'' if frame is None else _num(frame)}</td>"
                         f"<td class='num'>{'' if video is None else _num(video)}</td>"
                         f"<td><a href='{e(row['url'])}'>{e(row['citation'])}</a></td></tr>")
            parts.append(f"<p>{e(entry['train'])} &rarr; {e(entry['test'])}</p><table><tr><th></th><th>frame AUC</th>"
                         f"<th>video AUC</th><th>source</th></tr>{rows}</table>")

    artifacts = report.get("artifacts") or {}
    parts.append("<h2>Files</h2><ul>" + "".join(
        f"<li>{e(k)}: <code>{e(str(v))}</code></li>" for k, v in artifacts.items() if isinstance(v, str)) + "</ul>")
    parts.append(f"<details><summary>Configuration</summary><pre>{e(json.dumps(c, indent=2, default=str))}</pre></details>")
    parts.append(_IMAGE_CHECK)
    parts.append("</body></html>")
    return "\n".join(parts)


def _metric_table(m: dict, keys) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{label}</th>" for _, label in keys) + "<th>n</th></tr>"
    video = "<tr><th>videos</th>" + "".join(f"<td class='num'>{_num(m.get(f'video_{k}'))}</td>" for k, _ in keys) \
        + f"<td class='num'>{_count(m, 'video_n_real', 'video_n_fake', m.get('n_videos'))}</td></tr>"
    crops = "<tr><th>crops</th>" + "".join(f"<td class='num'>{_num(m.get(k))}</td>" for k, _ in keys) \
        + f"<td class='num'>{_count(m, 'n_real', 'n_fake', m.get('n'))}</td></tr>"
    return f"<table>{head}{video}{crops}</table>"


def _aggregation_table(m: dict) -> str:
    """Each video rule with its own threshold (chosen on validation) and test numbers."""
    stored = m.get("aggregations") or {}
    if not stored:
        return ""
    head = ("<tr><th>video score</th><th>threshold</th><th>validation video AUC</th><th>test video AUC</th>"
            "<th>test video accuracy</th><th>confusion</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(rule)}</td><td class='num'>{_num(a.get('threshold'))}</td>"
        f"<td class='num'>{_num(a.get('val_video_auc'))}</td><td class='num'>{_num(a.get('video_auc'))}</td>"
        f"<td class='num'>{_num(a.get('video_accuracy'))}</td><td>{html.escape(str(a.get('video_confusion_matrix')))}</td></tr>"
        for rule, a in stored.items())
    return ("<p>Video scores by rule (mean of crops; max over a frame's faces, then mean; the DFDC winner's "
            f"confident rule), each thresholded on validation:</p><table>{head}{body}</table>")


def _count(m: dict, real_key: str, fake_key: str, total) -> str:
    if m.get(real_key) is None:
        return html.escape(str(total))
    return f"{total} ({m.get(real_key)} real, {m.get(fake_key)} fake)"


def _num(value) -> str:
    return "n/a" if value is None else (f"{value:.4f}" if isinstance(value, (int, float)) else html.escape(str(value)))


def _figure(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _saved_evaluations(run_dir: Path) -> list[dict]:
    """Evaluations another command stored as ``run_dir/evaluations/*.json`` ({"dataset", "metrics"})."""
    found = []
    for file in sorted((run_dir / "evaluations").glob("*.json")):
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "metrics" in data:
            found.append({"dataset": data.get("dataset", file.stem), "metrics": data["metrics"]})
    return found

