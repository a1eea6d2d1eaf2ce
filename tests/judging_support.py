"""A finished run to judge with, made in seconds: the `tiny` backbone at 32 px with random weights,
saved and recorded as training would record it (no ingest, no training: these tests check the
machinery around a model, not what it learnt; tests/test_learning.py checks that)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

IMAGE_SIZE = 32
# One frame every 0.5 s of the 1 s sample videos: two frames, one face each.
INGEST = {"every": 0.5}
THRESHOLD = 0.5


@contextmanager
def pipeline_settings(**values: str | Path | None):
    """This process's settings and engine for ``values`` (DATA_DIR, DATABASE_URL, CELERY_BROKER_URL);
    restored afterwards."""
    from db.session import reset_engine
    from shared.settings import reset_settings

    names = ("DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL")
    before = {name: os.environ.get(name) for name in names}
    for name in names:
        os.environ.pop(name, None)
        if values.get(name) is not None:
            os.environ[name] = str(values[name])
    reset_settings()
    reset_engine()
    try:
        yield
    finally:
        reset_engine()
        for name, value in before.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        reset_settings()


def make_judging_run(data_dir: Path, database_url: str | None = None, run_id: str = "20261207-000000-t1ny",
                     image_size: int = IMAGE_SIZE) -> str:
    """Record a finished run whose model is a randomly initialised `tiny` network; its run id.
    The output layer is scaled so that crops get clearly different probabilities."""
    import keras
    import numpy as np

    from db.migrate import upgrade_schema
    from db.models import Run
    from db.session import session_scope
    from shared.ingest_params import IngestParams
    from workers.training.models import build_model

    with pipeline_settings(DATA_DIR=data_dir, DATABASE_URL=database_url):
        upgrade_schema()
        keras.utils.set_random_seed(7)
        model = build_model("tiny", weights="none", image_size=image_size, augment=False)
        dense = model.layers[-1]
        kernel, bias = dense.get_weights()
        dense.set_weights([kernel * 40.0, bias])
        run_dir = data_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        model.save(str(run_dir / "model.keras"))
        config = {"backbone": "tiny", "image_size": image_size, "threshold": THRESHOLD, "epochs": 0,
                  "split": "video", "weights": "none",
                  "ingest": IngestParams.from_settings(every=INGEST["every"], size=image_size).as_dict()}
        with session_scope() as session:
            session.add(Run(id=run_id, status="done", config=config,
                            artifacts={"model": f"runs/{run_id}/model.keras", "plots": []}))  # a key, as training records
        assert np.isfinite(kernel).all()
    return run_id


def sample_videos(folder: Path) -> list[Path]:
    """Short videos with one face each (1 s, 320x180), plus one without a face."""
    from shared.sample_data import make_folders_sample, write_blank_video

    summary = make_folders_sample(folder, people=2, seconds=1.0)
    videos = [folder / rel for rel in sorted(summary["videos"])]
    return [*videos, write_blank_video(folder / "blank.mp4", seconds=1.0)]
