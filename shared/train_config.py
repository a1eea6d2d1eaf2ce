"""A training run's configuration: every option with its default, type, choices and help, once.

The `train` command's options, `--train-option KEY=VALUE` parsing and the one check of a run's
options are all derived from ``TrainConfig``. Options are checked once, where they come in
(``from_options``); planning and training then pass the typed object. It becomes a dict only at the
edges: the run's record and ``config.json`` (``as_dict()`` plus what planning adds: ingest
parameters, data folder), read back with ``from_record``.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from shared.errors import InputError
from shared.backbones import BACKBONES, DEFAULT_BACKBONE, MAX_IMAGE_SIZE, TUNES, backbone_entry
from shared.settings import parse_bool

SPLIT_STRATEGIES = ("video", "official", "frame")
CLASS_WEIGHTS = ("balanced", "none")
# What the training side holds (workers/training/sbi.py): the datasets' real and fake videos; real
# videos only, each crop also blended into a pseudo-fake of itself (SBI); or both kinds of fakes.
FAKES = ("real", "sbi", "both")
# How a video's crop probabilities become its score (workers/training/aggregate.py).
AGGREGATIONS = ("mean", "max", "confident")
# The model's own augmentation layer (random rotation, shift, flip of every training crop).
AUGMENTS = ("auto", "on", "off")
# How Adam's rate moves over the epochs, and which epoch's weights the run keeps (workers/training/fit.py).
LR_SCHEDULES = ("constant", "cosine")
# best: the epoch of lowest validation loss; best-auc: of highest validation AUC (both with early stopping).
KEEPS = ("auto", "best", "best-auc", "last", "average")


def _auto_or_bool(value) -> str | bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        return parse_bool(str(value))
    except ValueError:
        raise ValueError("auto, true or false") from None


def _auto_or_count(value) -> str | int:
    if str(value).strip().lower() == "auto":
        return "auto"
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("auto or a whole number of at least 1")
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError("auto or a whole number of at least 1") from None
    if count < 1:
        raise ValueError("auto or a whole number of at least 1")
    return count


def _auto_or_size(value) -> str | int:
    """An image side: "auto" (the backbone's default, resolved by ``from_options``) or 32..512."""
    if value is None or str(value).strip().lower() == "auto":
        return "auto"
    message = f"auto or a whole number from 32 to {MAX_IMAGE_SIZE}"
    try:
        side = int(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if side != float(value) or not 32 <= side <= MAX_IMAGE_SIZE:
        raise ValueError(message)
    return side


def _option(help: str, *, flag: str | None = None, choices: tuple | None = None, minimum: float | None = None,
            above: float | None = None, below: float | None = None, cli: bool = True, parse=None,
            switch: bool = False) -> dict:
    """Field metadata: how the option is shown and checked. ``minimum`` is inclusive,
    ``above``/``below`` exclusive bounds; ``parse`` turns any given value into the field's value
    (ValueError says what is accepted); ``switch``: an --x/--no-x option whose absence means auto."""
    return {"help": help, "flag": flag, "choices": choices, "minimum": minimum, "above": above,
            "below": below, "cli": cli, "parse": parse, "switch": switch}


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = field(default=DEFAULT_BACKBONE, metadata=_option(
        "Architecture under the classifier head (shared/backbones.py; docs/backbones.md).", choices=BACKBONES))
    weights: str = field(default="imagenet", metadata=_option(
        "imagenet or pretrained (the backbone's own pretrained weights), none, a local notop .h5 PATH, "
        "or for a CLIP backbone a keras-hub preset name or DIR."))
    tune: str = field(default="auto", metadata=_option(
        "What trains: all, layernorm (the encoder's LayerNorm scales and biases + the head: GenD), head "
        "(a linear probe); auto: the backbone's default (all for CNNs, layernorm for CLIP).",
        choices=("auto", *TUNES)))
    epochs: int = field(default=10, metadata=_option("Passes over the training crops.", minimum=1))
    batch_size: int = field(default=32, metadata=_option(
        "Crops per device per step; the global batch is batch-size x replicas.", minimum=1))
    learning_rate: float = field(default=1e-4, metadata=_option("Adam's learning rate.", flag="--lr", above=0))
    lr_schedule: str = field(default="constant", metadata=_option(
        "constant: --lr throughout; cosine: from --lr down to 0 along a half cosine over the epochs asked for.",
        choices=LR_SCHEDULES))
    # auto is average with --fakes sbi: there validation holds pseudo-fakes only, whose loss swung
    # 0.64-2.46 between late epochs and stopped a run at epoch 21 keeping epoch 8 (held-out video AUC
    # 0.42); on the same trajectory the average of the last 15 of 45 epochs gave 0.82 and the last
    # epoch 0.75 (docs/detectors.md, runs 13, 14, 17).
    keep: str = field(default="auto", metadata=_option(
        "The weights the run keeps: best (the epoch of lowest validation loss, with early stopping); best-auc "
        "(of highest validation AUC, with early stopping); last (every epoch runs, the final weights); "
        "average (every epoch runs, the weights averaged over the last third of the epochs); auto: average "
        "with --fakes sbi (validation holds pseudo-fakes only), else best.", choices=KEEPS))
    split: str = field(default="video", metadata=_option(
        "video: grouped by source identity (no leak); official: the dataset's own test list; "
        "frame: random over crops (leaks, for comparison with the old notebook).", choices=SPLIT_STRATEGIES))
    test_size: float = field(default=0.2, metadata=_option(
        "Fraction of the videos held out for the test.", above=0, below=1))
    val_size: float = field(default=0.1, metadata=_option(
        "Fraction of the training side used for validation.", minimum=0, below=1, cli=False))
    seed: int = field(default=42, metadata=_option("Seed of the split, the shuffling and the weights."))
    class_weight: str = field(default="balanced", metadata=_option(
        "Weigh the classes inversely to their frequency.", choices=CLASS_WEIGHTS))
    image_size: str | int = field(default="auto", metadata=_option(
        f"Model input side in pixels, up to {MAX_IMAGE_SIZE} (crops of another size are resized); "
        "auto: the backbone's own (resnet50 128, xception 299, efficientnetb4 380, CLIP 224).",
        parse=_auto_or_size))
    dropout: float = field(default=0.3, metadata=_option("Dropout before the head.", minimum=0, below=1, cli=False))
    mixed_precision: bool = field(default=False, metadata=_option("float16 compute on a GPU (ignored on a CPU)."))
    jit: str | bool = field(default="auto", metadata=_option(
        "XLA-compile the training step [default: on where a GPU is seen]; not used on several replicas "
        "(Keras cannot compile a distributed step).", parse=_auto_or_bool, switch=True))
    replicas: str | int = field(default="auto", metadata=_option(
        "Devices to train on with MirroredStrategy: auto (every visible GPU) or N (the first N GPUs); "
        "one device or a CPU trains without mirroring.", parse=_auto_or_count))
    threshold: float = field(default=0.5, metadata=_option(
        "Fake probability at or above which a crop or video is called fake.", minimum=0, below=1, cli=False))
    partial: bool = field(default=False, metadata=_option(
        "Train although some videos of the datasets are not finished (an ingest is under way, or was "
        "interrupted): on the crops made so far. The run records which videos were unfinished."))
    fakes: str = field(default="real", metadata=_option(
        "Fakes to learn from: real (the datasets' fake videos); sbi (real videos only, each crop also "
        "self-blended into a pseudo-fake from its landmarks); both.", choices=FAKES))
    # auto is off for self-blended fakes: the layer resamples every training crop bilinearly, which
    # blurs the blend seams and resolution changes SBI teaches (validation and test crops are never
    # resampled); SBI's own recipe has colour/JPEG pair transforms and no geometric ones. Measured in
    # docs/detectors.md ("The learning guard and the recipes").
    augment: str = field(default="auto", metadata=_option(
        "The model's augmentation layer (random rotation, shift and flip of each training crop): on, off; "
        "auto: on, except off with --fakes sbi or both (it blurs the blend seams SBI teaches).",
        choices=AUGMENTS))
    aggregate: str = field(default="mean", metadata=_option(
        "Video score from its crops: mean; max (per frame the max over faces, then the mean, as SBI); "
        "confident (the DFDC winner's rule). The threshold is chosen on validation for each.",
        choices=AGGREGATIONS))
    # Decoded crops kept between epochs: "memory" (49 KB a crop), "none" (decode every epoch), or a
    # local directory for tf.data's file cache (a 100x Celeb-DF needs ~120 GB: see docs/scaling.md).
    cache: str = field(default="memory", metadata=_option(
        "Decoded crops between epochs: memory, none, or a local DIR for a file cache (not made when "
        "every crop has its video's crops.pack, which is read directly)."))

    @classmethod
    def from_options(cls, options: dict | None, *, check_files: bool = False) -> "TrainConfig":
        """Options over the defaults (None means default), typed and checked. Unknown keys are
        ignored. ``check_files``: a weights PATH must exist, and is made absolute."""
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in (options or {}).items():
            if key in known and value is not None:
                values[key] = _typed(known[key], value)
        config = cls(**values)
        config._check()
        config = config._resolved()
        if check_files:
            config = config._with_weights_file()
        return config

    @classmethod
    def from_record(cls, record: dict) -> "TrainConfig":
        """The configuration a run recorded (checked by ``from_options`` when it was planned), as it
        was: no second check. Keys that are not training options (ingest, data_dir) are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in names})

    @classmethod
    def parse_pairs(cls, pairs: list[str]) -> dict:
        """["epochs=1", "weights=none"] -> {"epochs": 1, "weights": "none"} (unchecked beyond types)."""
        known = {f.name: f for f in fields(cls)}
        aliases = {option_flag(f).lstrip("-").replace("-", "_"): f.name for f in fields(cls)}
        options = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip().replace("-", "_")
            key = aliases.get(key, key)
            if not sep or key not in known:
                raise InputError(f"--train-option {pair!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
            try:
                options[key] = _typed(known[key], value.strip())
            except InputError:
                raise InputError(f"--train-option {pair!r}: {value!r} is not a {_type_name(known[key])}") from None
        return options

    def as_dict(self) -> dict:
        return asdict(self)

    def _check(self) -> None:
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            name = f"{option_flag(f)} ({f.name})"
            if meta["choices"] and value not in meta["choices"]:
                raise InputError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"{name} must be a finite number, got {value}")
            if meta["parse"]:
                continue  # checked by its parser
            if meta["minimum"] is not None and value < meta["minimum"]:
                raise InputError(f"{name} must be at least {meta['minimum']}, got {value}")
            if meta["above"] is not None and not value > meta["above"]:
                raise InputError(f"{name} must be greater than {meta['above']}, got {value}")
            if meta["below"] is not None and not value < meta["below"]:
                raise InputError(f"{name} must be less than {meta['below']}, got {value}")

        entry = backbone_entry(self.backbone)
        if entry.weights is None and self.weights.lower() != "none":
            raise InputError(f"--backbone {self.backbone} has no pretrained weights: add --weights none")
        if self.tune != "auto" and self.tune not in entry.tunes:
            raise InputError(f"--tune {self.tune} is not offered for {self.backbone}: choose one of "
                             f"{', '.join(entry.tunes)}")

    def _resolved(self) -> "TrainConfig":
        """"auto" replaced by what the backbone's registry entry says, so the run records numbers."""
        entry = backbone_entry(self.backbone)
        return TrainConfig(**{**self.as_dict(),
                              "image_size": entry.default_size if self.image_size == "auto" else self.image_size,
                              "tune": entry.tunes[0] if self.tune == "auto" else self.tune,
                              "augment": self.augment if self.augment != "auto"
                              else ("on" if self.fakes == "real" else "off"),
                              "keep": self.keep if self.keep != "auto" else ("average" if self.fakes == "sbi" else "best")})

    def _with_weights_file(self) -> "TrainConfig":
        if self.weights.lower() in ("imagenet", "pretrained", "none"):
            return self
        path = Path(self.weights).expanduser()
        if backbone_entry(self.backbone).source == "keras-hub":
            if path.is_dir():
                return TrainConfig(**{**self.as_dict(), "weights": str(path.resolve())})
            return self  # a preset name, checked where the model is built
        if not path.is_file():
            raise InputError(f"--weights {self.weights}: no such file (use imagenet, none, or a local notop .h5)")
        return TrainConfig(**{**self.as_dict(), "weights": str(path.resolve())})


def upscale_warning(image_size: int, crop_size: int | None) -> str | None:
    """The one loud warning of a model that reads crops larger than they were stored: enlarged crops
    hold no detail finer than their stored side, which is what a detector looks for."""
    if crop_size is None or int(crop_size) >= int(image_size):
        return None
    return (f"UPSCALED CROPS: the crops were stored at {crop_size} px and the model reads {image_size} px, so each "
            f"is enlarged {int(image_size) / int(crop_size):.2f}x and holds no detail finer than {crop_size} px; "
            f"ingest again with --size {image_size} (or train with --image-size {crop_size})")


def trained_part(config: dict) -> str:
    """A run's record -> "tune layernorm: 417 trainable parameters" (runs before --tune: "tune all")."""
    count = config.get("trainable_parameters")
    return f"tune {config.get('tune') or 'all'}" + (f": {count:,} trainable parameters" if count is not None else "")


def schedule_part(config: dict) -> str:
    """A run's record -> "lr 0.0003 cosine, augmentation off, keeps the average of 13 epochs" (runs
    recorded before these options: "lr 0.0001, augmentation on, keeps the best epoch")."""
    lr = f"lr {config.get('learning_rate')}" + (" cosine" if config.get("lr_schedule") == "cosine" else "")
    augment = config.get("augment") or "on"
    if augment == "auto":
        augment = "on" if config.get("fakes", "real") == "real" else "off"
    keep = config.get("keep") or "best"
    if keep == "auto":
        keep = "average" if config.get("fakes") == "sbi" else "best"
    kept = {"best": "the epoch of lowest validation loss", "best-auc": "the epoch of highest validation AUC",
            "last": "the last epoch",
            "average": f"the average of {config.get('averaged_epochs', 'the last')} epochs"}.get(keep, keep)
    return f"{lr}, augmentation {augment}, keeps {kept}"


def option_flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def option_fields() -> list:
    """The fields the `train` command shows as options, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata["cli"]]


def field_type(f) -> type:
    """The field's declared type (``from __future__ import annotations`` leaves only its text)."""
    return _FIELD_TYPES[f.name]


_FIELD_TYPES = typing.get_type_hints(TrainConfig)


def _type_name(f) -> str:
    kind = field_type(f)
    return getattr(kind, "__name__", str(kind))  # int, or "str | bool"


def _typed(f, value):
    """A value (from JSON, click or a KEY=VALUE string) as the field's type."""
    if f.metadata["parse"]:
        try:
            return f.metadata["parse"](value)
        except ValueError as exc:
            raise InputError(f"{option_flag(f)} ({f.name}) must be {exc}, got {value!r}") from None
    kind = field_type(f)
    if kind is bool:
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError:
                raise InputError(f"{option_flag(f)} ({f.name}) must be true or false, got {value!r}") from None
        return bool(value)
    if kind is str:
        value = str(value)
        return value.lower() if f.metadata["choices"] else value
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"{option_flag(f)} ({f.name}) must be a {kind.__name__}, got {value!r}") from None
