"""Yes/no values are read one way, in settings and in training options."""

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
