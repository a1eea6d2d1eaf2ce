"""How a video becomes crops, as recorded with every ingest: no heavy imports, so a command can
build and check these before its local workers start."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from shared.settings import get_settings, setting_default


# IngestParams field -> the setting that holds its default (shared/settings.py).
_PARAM_SETTINGS = {
    "every_s": "sample_every_s",
    "min_confidence": "min_confidence",
    "margin": "crop_margin",
    "size": "crop_size",
    "detect_max_side": "detect_max_side",
    "detect_batch": "detect_batch",
    "min_face_fraction": "min_face_fraction",
    "seek": "decode_seek",
}


@dataclass(frozen=True)
class IngestParams:
    """How a video becomes crops. Recorded with every ingest: a run and `predict` reuse it."""

    every_s: float = setting_default("sample_every_s")
    min_confidence: float = setting_default("min_confidence")
    margin: float = setting_default("crop_margin")
    size: int = setting_default("crop_size")
    detect_max_side: int = setting_default("detect_max_side")
    detect_batch: int = setting_default("detect_batch")
    # Smallest face searched for, as a fraction of the frame's shorter side (see Settings).
    min_face_fraction: float = setting_default("min_face_fraction")
    # Seek to the sampled frames when the keyframes let a seek decode fewer frames than a walk.
    seek: bool = setting_default("decode_seek")
    # The compiled MTCNN stages (workers/detector.py); False: the package's eager detect_faces (bench).
    compiled_detector: bool = True
    # Per-ingest choices with no setting of their own: an older record lacks them, and means these.
    frames: int | None = None  # N frames evenly spaced over the whole video instead of one every every_s
    largest_face: bool = False  # keep only the largest face of each frame (DeepfakeBench); default: every face
    align: bool = False  # rotate and scale each face so its eyes are level (workers/align.py)

    def __post_init__(self):
        if self.frames is not None and self.frames < 1:
            raise ValueError("frames must be at least 1")

    @classmethod
    def from_settings(cls, **overrides) -> "IngestParams":
        """This process's settings, with the overrides that are not None on top."""
        settings = get_settings()
        values = {name: getattr(settings, setting) for name, setting in _PARAM_SETTINGS.items()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_dict(cls, recorded: dict | None) -> "IngestParams":
        """Parameters recorded by an ingest (JSON); what an older record lacks comes from settings."""
        return cls.from_settings(**(recorded or {}))

    def as_dict(self) -> dict:
        return asdict(self)
