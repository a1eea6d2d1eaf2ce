"""The published cross-dataset numbers: the data file, recognising datasets, the lookup, and the
report (text and HTML) printing a run's AUCs beside them."""

import pytest

from orchestrator.output import format_report
from shared.errors import InputError
from shared.published import (
    comparisons, dataset_key, known_keys, parse_dataset_keys, published_for, published_table,
)
from workers.training.report_html import render_report_html


def test_every_number_has_a_source_with_an_address():
    table = published_table()
    assert table["results"]
    for row in table["results"]:
        source = table["sources"][row["source"]]
        assert source["url"].startswith("https://") and source["citation"]
        assert 0.5 < row["auc"] <= 1.0 and row["level"] in ("frame", "video")
    assert {"ffpp-c23", "celebdf-v2", "dfdc", "dfdcp"} <= set(known_keys())


def test_datasets_are_recognised_by_format_and_name():
    assert dataset_key("ffpp", "FaceForensics++", {"compression": "c23"}) == "ffpp-c23"
    assert dataset_key("ffpp", "ff", {"compression": "c40"}) == "ffpp-c40"
    assert dataset_key("celebdf", "Celeb-DF-v2") == "celebdf-v2"
    assert dataset_key("celebdf", "celeb_df_v1") == "celebdf-v1"
    assert dataset_key("celebdf", "my-faces") is None  # not said: the user names it
    assert dataset_key("dfdc", "dfdc_train") == "dfdc"
    assert dataset_key("dfdc", "DFDC-preview") == "dfdcp" == dataset_key("dfdc", "dfdcp")
    assert dataset_key("folders", "celebdf-v2") is None


def test_lookup_of_a_pair():
    rows = published_for("ffpp-c23", "celebdf-v2")
    by_method = {(row["method"], row["level"]): row["auc"] for row in rows}
    assert by_method[("Xception", "frame")] == 0.737
    assert by_method[("EfficientNet-B4", "frame")] == 0.749
    assert by_method[("SBI (EfficientNet-B4)", "video")] == 0.9382
    assert by_method[("Forensics Adapter (CLIP ViT-L/14)", "video")] == 0.957
    assert all(row["url"].startswith("https://arxiv.org/") for row in rows)
    assert {row["auc"] for row in published_for("ffpp-c23", "dfdcp")} == {0.857, 0.929}
    assert published_for("celebdf-v2", "ffpp-c23") == [] and published_for(None, "dfdc") == []


def test_user_named_keys_are_checked():
    assert parse_dataset_keys(["mycdf=celebdf-v2", " ff = ffpp-c23"]) == {"mycdf": "celebdf-v2", "ff": "ffpp-c23"}
    with pytest.raises(InputError, match="KEY one of"):
        parse_dataset_keys(["mycdf=celebdf-v3"])
    with pytest.raises(InputError):
        parse_dataset_keys(["mycdf"])


def test_comparisons_need_one_known_training_dataset():
    evaluation = {"dataset": "cdf", "key": "celebdf-v2", "metrics": {"auc": 0.71, "video_auc": 0.77}}
    (entry,) = comparisons(["ffpp-c23"], [evaluation, {"dataset": "x", "key": None, "metrics": {}}])
    assert entry["frame_auc"] == 0.71 and entry["video_auc"] == 0.77 and entry["aggregate"] == "mean"
    assert comparisons(["ffpp-c23", "celebdf-v2"], [evaluation]) == []  # trained on two: no published pair
    assert comparisons([None], [evaluation]) == []


def test_report_text_and_html_show_the_run_beside_the_published_numbers(tmp_path):
    evaluation = {"dataset": "cdf", "key": "celebdf-v2", "metrics": {"auc": 0.712, "video_auc": 0.774}}
    report = {
        "run_id": "r1", "status": "done", "config": {"backbone": "tiny", "datasets": ["ff"]},
        "split": {"strategy": "video", "fakes": "sbi", "train_fake_videos": 0, "val_fake_videos": 0,
                  "test_fake_videos": 4, "dropped_fake_videos": 12},
        "metrics": {"video_auc": 0.9, "aggregate": "max", "warnings": [],
                    "pseudo_fakes": {"per_epoch": 40, "train_made": 120, "epochs_run": 3, "validation": 8},
                    "aggregations": {"max": {"threshold": 0.4, "video_auc": 0.9, "val_video_auc": 1.0}}},
        "artifacts": {}, "evaluations": [],
        "published": comparisons(["ffpp-c23"], [evaluation]),
    }
    text = format_report(report)
    assert "ffpp-c23 -> celebdf-v2 (on cdf): this run frame auc 0.712, video auc 0.774 (mean)" in text
    assert "published video auc 0.938  SBI (EfficientNet-B4)  [https://arxiv.org/abs/2204.08376]" in text
    assert "the training part holds 0 fake videos" in text and "120 made over 3 epochs" in text
    assert "max of crops" in text
    page = render_report_html(report, tmp_path)
    assert "Beside the published numbers" in page and "0.7740" in page and "0.9382" in page
    assert "https://arxiv.org/abs/2411.19715" in page and "120 made over" in page
    assert "<td>max</td>" in page
