"""The database: datasets, their videos, the face crops found in them, training runs and their
evaluations on other datasets."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

from shared.labels import PENDING, RUN_QUEUED


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class WorkState:
    """Where a piece of queued work stands (a video's ingest, a training run, an evaluation): its
    status (a new row's is ``initial_status``), the worker that took it, why it failed, when it ended.
    What only some of them record (attempts, started_at, task_id) is declared on those."""

    initial_status: ClassVar[str]

    @declared_attr
    def status(cls) -> Mapped[str]:
        return mapped_column(String(16), default=cls.initial_status)

    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    root: Mapped[str] = mapped_column(String(1024), unique=True)
    # What commands call it (`--dataset NAME`): the folder's name unless `ingest --name` said otherwise.
    name: Mapped[str] = mapped_column(String(128), unique=True)
    format: Mapped[str] = mapped_column(String(16), default="celebdf")  # celebdf|ffpp|dfdc|folders
    # How its crops were made (shared.ingest_params.IngestParams, the latest ingest's): runs and predict reuse it.
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # What its reader was told (FF++ compression, splits folder): a later ingest reads it the same way.
    scan_options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    videos: Mapped[list["Video"]] = relationship(back_populates="dataset")


class Video(WorkState, Base):
    __tablename__ = "videos"
    initial_status = PENDING  # shared.labels.VIDEO_STATUSES
    __table_args__ = (
        UniqueConstraint("dataset_id", "rel_path", name="uq_videos_dataset_path"),
        # Progress counts and the --then-train barrier ask "what is unfinished in this dataset?".
        Index("ix_videos_dataset_status", "dataset_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    rel_path: Mapped[str] = mapped_column(String(512))  # e.g. "Celeb-real/id0_0000.mp4"
    folder: Mapped[str] = mapped_column(String(512))
    label: Mapped[int] = mapped_column(Integer)  # 0 real, 1 fake
    # Identity of the person in the source footage ("id0"); None for YouTube-real.
    source_identity: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Identity whose face was swapped in (fakes only).
    target_identity: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # For a fake, the real video it was made from ("Celeb-real/id0_0000.mp4").
    source_video: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # Videos sharing a group never sit on both sides of a split.
    group_key: Mapped[str] = mapped_column(String(512))
    official_test: Mapped[bool] = mapped_column(Boolean, default=False)
    # The manipulation method of an FF++ fake ("Deepfakes", "Face2Face", ...); None elsewhere.
    method: Mapped[str | None] = mapped_column(String(64), nullable=True)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    frames_decoded: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames_sampled: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What the container announced; fewer decoded means a damaged video (a warning, not a failure).
    frames_expected: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    task_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ingest_id: Mapped[int | None] = mapped_column(ForeignKey("ingests.id"), nullable=True)
    # The file its crops were made from (workers/fingerprint.py): a later ingest that finds another
    # file under the same name does the video again. None: not processed since this was recorded.
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)

    dataset: Mapped[Dataset] = relationship(back_populates="videos")
    crops: Mapped[list["Crop"]] = relationship(back_populates="video", cascade="all, delete-orphan")


class Crop(Base):
    __tablename__ = "crops"
    __table_args__ = (
        UniqueConstraint("video_id", "frame_index", "face_index", name="uq_crops_video_frame_face"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp_s: Mapped[float] = mapped_column(Float)
    face_index: Mapped[int] = mapped_column(Integer)
    # The detector's box in original frame pixels (before margin, square and clamping).
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    crop_path: Mapped[str] = mapped_column(String(1024))  # relative to DATA_DIR
    # MTCNN's five landmarks in original frame pixels (None when the detector gave none).
    left_eye_x: Mapped[float | None] = mapped_column(Float, nullable=True)
    left_eye_y: Mapped[float | None] = mapped_column(Float, nullable=True)
    right_eye_x: Mapped[float | None] = mapped_column(Float, nullable=True)
    right_eye_y: Mapped[float | None] = mapped_column(Float, nullable=True)
    nose_x: Mapped[float | None] = mapped_column(Float, nullable=True)
    nose_y: Mapped[float | None] = mapped_column(Float, nullable=True)
    mouth_left_x: Mapped[float | None] = mapped_column(Float, nullable=True)
    mouth_left_y: Mapped[float | None] = mapped_column(Float, nullable=True)
    mouth_right_x: Mapped[float | None] = mapped_column(Float, nullable=True)
    mouth_right_y: Mapped[float | None] = mapped_column(Float, nullable=True)

    video: Mapped[Video] = relationship(back_populates="crops")


class Ingest(Base):
    """One `orchestrator ingest` invocation: its parameters and its "all done" barrier."""

    __tablename__ = "ingests"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    params: Mapped[dict] = mapped_column(JSON)
    then_train: Mapped[bool] = mapped_column(Boolean, default=False)
    train_options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Set exactly once, by whoever finishes the last video (see workers/planning/barrier.py).
    train_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(WorkState, Base):
    """A training run: its configuration, split, progress, metrics and artifacts."""

    __tablename__ = "runs"
    initial_status = RUN_QUEUED  # shared.labels.RUN_STATUSES

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict] = mapped_column(JSON)
    split: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    history: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    artifacts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The lease (workers/training/lease.py): starts so far, and the holder's last heartbeat.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resumed_from_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)  # epochs already done
    # Crops of its split replaced since it was planned (a video changed on disk, or was ingested again
    # with --force): {"videos", "crops", "examples", "first_at", "last_at"}; None while its data is as planned.
    data_changed: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SplitMember(Base):
    """Which part (train, val, test) of a run's split a crop belongs to."""

    __tablename__ = "split_members"
    # "Which runs use this video's crops?" when a video is done again (workers/ingest.py), and the
    # ON DELETE CASCADE from crops: both look rows up by crop.
    __table_args__ = (Index("ix_split_members_crop_id", "crop_id"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    crop_id: Mapped[int] = mapped_column(ForeignKey("crops.id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[str] = mapped_column(String(8))


class Evaluation(WorkState, Base):
    """A run's model scored on one dataset's crops (`orchestrator evaluate`): one row per
    (run, dataset, part), replaced when evaluated again."""

    __tablename__ = "evaluations"
    __table_args__ = (UniqueConstraint("run_id", "dataset_id", "part", name="uq_evaluations_run_dataset_part"),)
    initial_status = RUN_QUEUED  # and a run's other statuses

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    part: Mapped[str] = mapped_column(String(8))  # test|all
    videos: Mapped[int | None] = mapped_column(Integer, nullable=True)
    crops: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    artifacts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """A key of the HTTP API (`orchestrator api-key create NAME`). Only its SHA-256 is kept: the key
    itself is printed once and never stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole key
    prefix: Mapped[str] = mapped_column(String(16))  # its first characters, to tell keys apart in a list
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Judgement(Base):
    """One video judged by one run's model (`predict --queue`, the HTTP API): who asked, which bytes,
    which model, how it went, and the verdict. The same bytes and the same model file give the
    stored verdict again (workers/planning/judgements.py), unless forced."""

    __tablename__ = "judgements"
    __table_args__ = (
        Index("ix_judgements_video_model", "video_sha256", "model_sha256"),
        Index("ix_judgements_owner_created", "api_key_id", "created_at"),
        Index("ix_judgements_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    video_sha256: Mapped[str] = mapped_column(String(64))
    video_size: Mapped[int] = mapped_column(BigInteger)
    file_name: Mapped[str | None] = mapped_column(String(512), nullable=True)  # as sent: data, never a path
    source: Mapped[str] = mapped_column(String(1024))  # where the worker reads it (an upload: by content hash)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)  # None: the CLI
    requested_by: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(String(64))
    backbone: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    aggregation: Mapped[str] = mapped_column(String(32))
    model_sha256: Mapped[str] = mapped_column(String(64))
    ingest_params: Mapped[dict] = mapped_column(JSON)
    explain: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|no_face|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)  # real|fake
    fake_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    faces: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # [{"t": seconds, "frame": index, "face": index, "p": fake probability}, ...] in the video's order.
    scores: Mapped[list | None] = mapped_column(JSON, nullable=True)
    explanation: Mapped[str | None] = mapped_column(String(1024), nullable=True)  # the Grad-CAM sheet
    reused_from: Mapped[str | None] = mapped_column(String(32), nullable=True)  # a stored verdict given again
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    task_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
