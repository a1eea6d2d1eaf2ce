"""How a video becomes crops: every ingest option with its flag, type, default, bounds and help, once.

The `ingest` command's options (orchestrator/options.py), their checks, the task message and the
worker all use ``IngestParams`` and its field names: ``--every`` is ``every`` from the flag to
``SampledFrames``. A field whose default a deployment may change names its setting
(shared/settings.py), which holds the default and the help: ``every`` <- ``sample_every_s`` <- the
environment variable ``SAMPLE_EVERY_S``. Recorded with every ingest: a run and `predict` reuse it.

No heavy imports: the command builds and checks these before its local workers start.
"""

import math
import types
from dataclasses import asdict, dataclass, field, fields

from shared.errors import InputError
from shared.settings import get_settings, setting_default, setting_help

# A protocol: the field's preprocessing in one flag. DeepfakeBench (Yan et al., NeurIPS 2023 D&B,
# preprocessing/preprocess.py and its config): 32 frames evenly spaced over each video, the largest
# face, aligned on its landmarks, the face box enlarged 1.3x (our margin 0.3), saved at 256 px. The
# field keeps every face its detector returns (dlib's has no score; the DFDC winner keeps MTCNN's, all
# at >= 0.8): so does the protocol, MTCNN's own last threshold instead of our 0.95. Measured: +1 % of
# frames with a face, no false face on 180 faceless frames (docs/benchmarks.md, issue #20).
PROTOCOLS = {
    "deepfakebench": {"frames": 32, "largest_face": True, "align": True, "margin": 0.3, "size": 256,
                      "min_confidence": 0.8},
}

# Field names of older records and task messages -> today's (migration 0005 renamed the recorded ones).
_OLDER_NAMES = {"every_s": "every"}


def _param(help: str | None = None, *, setting: str | None = None, cli: bool = True,
           minimum: float | None = None, maximum: float | None = None, above: float | None = None,
           choices: tuple | None = None) -> dict:
    """Field metadata. ``setting``: the Settings field that holds the default (and, when ``help`` is
    None, the help); ``cli``: an option of `ingest` (flag: the field's name, dashed); ``minimum``,
    ``maximum`` inclusive and ``above`` exclusive bounds (None: no bound)."""
    return {"help": help, "setting": setting, "cli": cli, "minimum": minimum, "maximum": maximum, "above": above,
            "choices": choices}


def _setting_field(setting: str, **meta):
    return field(default=setting_default(setting), metadata=_param(setting=setting, **meta))


@dataclass(frozen=True)
class IngestParams:
    """How a video becomes crops. Recorded with every ingest: a run and `predict` reuse it."""

    every: float = _setting_field("sample_every_s", above=0)
    frames: int | None = field(default=None, metadata=_param(
        "N frames evenly spaced over the whole video (the field's protocol) instead of --every.", minimum=1))
    min_confidence: float = _setting_field("min_confidence", minimum=0, maximum=1)
    margin: float = _setting_field("crop_margin", minimum=0, maximum=10)
    # A crop is resized to size x size: 1,000,000 asked cv2 for 3 TB.
    size: int = _setting_field("crop_size", minimum=16, maximum=2048)
    largest_face: bool = field(default=False, metadata=_param(
        "Keep only the largest face of each frame [default: every face]."))
    align: bool = field(default=False, metadata=_param(
        "Rotate and scale each face so the eyes are level (MTCNN's landmarks)."))
    protocol: str | None = field(default=None, metadata=_param(
        "deepfakebench: the field's preprocessing in one flag (32 evenly spaced frames, the largest face, "
        "aligned, margin 0.3, 256 px, every face MTCNN returns: confidence 0.8); other options may not "
        "contradict it.", choices=tuple(PROTOCOLS)))
    # Tuned per deployment, not per ingest (their reasons: shared/settings.py).
    detect_max_side: int = _setting_field("detect_max_side", cli=False)
    detect_batch: int = _setting_field("detect_batch", cli=False)
    min_face_fraction: float = _setting_field("min_face_fraction", cli=False)
    seek: bool = _setting_field("decode_seek", cli=False)
    # The compiled MTCNN stages (workers/detector.py); False: the package's eager detect_faces (bench).
    compiled_detector: bool = field(default=True, metadata=_param(cli=False))

    def __post_init__(self):
        for f in fields(self):
            _check(f, getattr(self, f.name))

    @classmethod
    def from_options(cls, options: dict) -> "IngestParams":
        """The `ingest` command's options (None: not given) over this process's settings; a
        ``protocol``'s values over both (an option that contradicts it is an InputError)."""
        options = dict(options)
        protocol = options.get("protocol")
        if protocol is not None:
            preset = PROTOCOLS.get(str(protocol).lower())
            if preset is None:
                raise InputError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
            for key, value in preset.items():
                given = options.get(key)
                if given not in (None, False) and given != value:
                    raise InputError(f"--protocol {protocol} sets {option_flag_of(key)} {value}: leave "
                                     f"{option_flag_of(key)} out, or leave out --protocol")
            options.update(preset, protocol=str(protocol).lower())
        if options.get("frames") is not None and options.get("every") is not None:
            raise InputError("--frames and --every are exclusive: N frames over the whole video, or one every S seconds")
        return cls.from_settings(**options)

    @classmethod
    def from_settings(cls, **overrides) -> "IngestParams":
        """This process's settings, with the overrides that are not None on top."""
        settings = get_settings()
        values = {f.name: getattr(settings, f.metadata["setting"]) for f in fields(cls) if f.metadata["setting"]}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_dict(cls, recorded: dict | None) -> "IngestParams":
        """Parameters recorded by an ingest or sent in a task message (JSON); what an older record
        lacks comes from settings."""
        return cls.from_settings(**_renamed(recorded or {}))

    def as_dict(self) -> dict:
        return asdict(self)


def _renamed(recorded: dict) -> dict:
    """A record with today's field names."""
    return {_OLDER_NAMES.get(key, key): value for key, value in recorded.items()}


def option_flag(f) -> str:
    return option_flag_of(f.name)


def option_flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def option_help(f) -> str:
    return f.metadata["help"] or setting_help(f.metadata["setting"])


def option_fields() -> list:
    """The fields the `ingest` command shows as options, in declaration order."""
    return [f for f in fields(IngestParams) if f.metadata["cli"]]


def value_type(f) -> type:
    """int for ``int | None``: the type a given value has."""
    if isinstance(f.type, types.UnionType):
        return next(t for t in f.type.__args__ if t is not type(None))
    return f.type


_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _check(f, value) -> None:
    if value is None and f.default is None:
        return
    meta, kind = f.metadata, value_type(f)
    name = option_flag(f) if meta["cli"] else f.name
    whole = isinstance(value, int) and not isinstance(value, bool)
    if (kind is bool and not isinstance(value, bool)) or (kind is int and not whole) \
            or (kind is float and not (whole or isinstance(value, float))):
        raise InputError(f"{name} must be {_KIND_NAMES[kind]}, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise InputError(f"{name} must be {_KIND_NAMES[kind]}, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise InputError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    low, high, above = meta["minimum"], meta["maximum"], meta["above"]
    if low is not None and high is not None and not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}, got {value}")
    if low is not None and value < low:
        raise InputError(f"{name} must be at least {low}, got {value}")
    if above is not None and not value > above:
        raise InputError(f"{name} must be greater than {above}, got {value}")
