"""Where a number stands: the field's published cross-dataset AUCs (``published_results.json``, each
with its source) beside a run's own, for the same train -> test pair.

A recorded dataset is recognised by its format and name (``dataset_key``): FF++ by its compression
(``ffpp-c23``), Celeb-DF v2 by a name that says v2, DFDC's preview by a name that says preview or
dfdcp. A dataset that is not recognised (a renamed folder) is named by the user instead
(``report --dataset-key NAME=KEY``).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from shared.errors import InputError

DATA_FILE = Path(__file__).with_name("published_results.json")


@lru_cache(maxsize=1)
def published_table() -> dict:
    return json.loads(DATA_FILE.read_text())


def known_keys() -> list[str]:
    rows = published_table()["results"]
    return sorted({row["train"] for row in rows} | {row["test"] for row in rows})


def dataset_key(fmt: str | None, name: str, scan_options: dict | None = None) -> str | None:
    """The table's key for a recorded dataset, or None when its format and name do not say."""
    text = re.sub(r"[^a-z0-9]+", "", (name or "").lower())
    if fmt == "ffpp":
        return f"ffpp-{(scan_options or {}).get('compression', 'c23')}"
    if fmt == "celebdf":
        if "v2" in text:
            return "celebdf-v2"
        return "celebdf-v1" if "v1" in text else None
    if fmt == "dfdc":
        return "dfdcp" if ("preview" in text or "dfdcp" in text) else "dfdc"
    return None


def parse_dataset_keys(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """["mycdf=celebdf-v2"] -> {"mycdf": "celebdf-v2"}; InputError for a key the table lacks."""
    chosen = {}
    for pair in pairs or ():
        name, sep, key = pair.partition("=")
        if not sep or not name.strip() or key.strip() not in known_keys():
            raise InputError(f"--dataset-key {pair!r}: expected NAME=KEY with KEY one of {', '.join(known_keys())}")
        chosen[name.strip()] = key.strip()
    return chosen


def published_for(train: str | None, test: str | None) -> list[dict]:
    """The table's rows for one pair, each with its source's citation and URL filled in."""
    if not train or not test:
        return []
    table = published_table()
    return [{**row, "citation": table["sources"][row["source"]]["citation"],
             "url": table["sources"][row["source"]]["url"]}
            for row in table["results"] if row["train"] == train and row["test"] == test]


def comparisons(train_keys: list[str | None], evaluations: list[dict]) -> list[dict]:
    """For each evaluation ({"dataset", "key", "metrics"}) on a pair the table knows, the run's frame
    and video AUC beside the published rows: [{"train", "test", "dataset", "frame_auc", "video_auc",
    "aggregate", "published": [...]}]. A run trained on several datasets matches no published pair."""
    known = {key for key in train_keys}
    if len(known) != 1 or None in known:
        return []
    (train,) = known
    found = []
    for evaluation in evaluations:
        rows = published_for(train, evaluation.get("key"))
        if not rows:
            continue
        metrics = evaluation.get("metrics") or {}
        found.append({"train": train, "test": evaluation["key"], "dataset": evaluation["dataset"],
                      "frame_auc": metrics.get("auc"), "video_auc": metrics.get("video_auc"),
                      "aggregate": metrics.get("aggregate", "mean"), "published": rows})
    return found


def format_comparison(entry: dict) -> list[str]:
    """Text lines: the run's numbers, then each published one with its source."""
    def num(value):
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"{entry['train']} -> {entry['test']} (on {entry['dataset']}): this run frame auc "
             f"{num(entry['frame_auc'])}, video auc {num(entry['video_auc'])} ({entry['aggregate']})"]
    for row in entry["published"]:
        lines.append(f"  published {row['level']:<5} auc {row['auc']:.3f}  {row['method']}  [{row['url']}]")
    return lines
