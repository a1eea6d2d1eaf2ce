"""Yes/no values are read one way, in settings and in training options; docs/settings.md is generated
from the settings' declarations."""

from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from shared.errors import InputError
from shared.settings import load_settings, parse_bool
from shared.train_config import TrainConfig


@pytest.mark.parametrize("text, value", [("1", True), ("Yes", True), (" on ", True), ("TRUE", True),
                                         ("0", False), ("no", False), ("Off", False), ("false", False)])
def test_yes_and_no_words(text, value):
    assert parse_bool(text) is value


def test_anything_else_is_an_error_not_a_silent_false(monkeypatch):
    with pytest.raises(ValueError):
        parse_bool("maybe")
    monkeypatch.setenv("CROP_PACKS", "nah")
    with pytest.raises(InputError, match="CROP_PACKS='nah': not a bool"):
        load_settings()
    monkeypatch.setenv("CROP_PACKS", "Off")
    assert load_settings().crop_packs is False
    assert TrainConfig.from_options({"mixed_precision": "yes"}).mixed_precision is True
    assert TrainConfig.from_options({"jit": "off"}).jit is False
    with pytest.raises(InputError, match="--mixed-precision .* must be true or false"):
        TrainConfig.from_options({"mixed_precision": "maybe"})
    with pytest.raises(InputError, match="--jit .* must be auto, true or false"):
        TrainConfig.from_options({"jit": "maybe"})


def test_docs_settings_table_is_the_one_the_code_declares():
    from shared.settings import Settings, settings_table

    doc = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    start = doc.index("<!-- settings table: generated, do not edit -->\n") + len("<!-- settings table: generated, do not edit -->\n")
    end = doc.index("<!-- end of settings table -->")
    assert doc[start:end] == settings_table(), "docs/settings.md is stale: python -m shared.settings --table"
    undocumented = [f.name for f in fields(Settings) if f.default is not MISSING and not f.metadata.get("help")]
    assert not undocumented, f"settings without a meaning (metadata help): {undocumented}"
