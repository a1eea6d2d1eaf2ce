"""A full disk during ingest (issue 19, item 3): the videos it hits stay pending with no file left
behind, the command says to free space and run again, and the same command then finishes them."""

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shared.sample_data import make_sample_dataset
from tests.support import pipeline_env, run_cli, run_cli_json
from workers.crop_pack import PACK_NAME

pytestmark = pytest.mark.integration


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs of this test alone; skipped where mounting is not permitted (not root, a container
    without CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(mounted.stderr or mounted.stdout).strip()}): "
                    "the full-disk test needs root and permission to mount")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], capture_output=True)
    if os.path.ismount(mount_point):
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def files_and_rows(data_dir: Path, database: Path):
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        videos = {r.rel_path: r for r in conn.execute(text("SELECT id, rel_path, status, error, enqueued_at FROM videos"))}
        recorded = {r.crop_path for r in conn.execute(text("SELECT crop_path FROM crops"))}
    engine.dispose()
    on_disk = {str(p.relative_to(data_dir)) for p in (data_dir / "crops").rglob("*") if p.is_file()}
    return videos, recorded, on_disk


def test_a_full_disk_leaves_videos_pending_without_orphans_and_a_rerun_finishes_them(tmp_path, small_tmpfs):
    root = tmp_path / "Celeb-DF"
    make_sample_dataset(root, reals_per_folder=2, fakes=2, seconds=3.0)  # 6 videos, 6 crops each below
    data_dir = small_tmpfs / "data"
    # The database lives outside the small disk: which of a crop or a row would hit the full disk
    # first is a race, and this test is about crops (a full database has its own line, in cli.py).
    env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=f"sqlite:///{tmp_path / 'pipeline.db'}")
    args = ["ingest", str(root), "--workers", "1", "--every", "0.5"]

    full = run_cli(args, env)
    assert full.returncode == 1, (full.stdout[-2000:], full.stderr[-2000:])
    errors = [line for line in full.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "left pending: no space left for their crops in DATA_DIR; free space and run " \
                                  "the same command again" in errors[0], full.stderr[-2000:]
    assert "Traceback" not in full.stderr

    videos, recorded, on_disk = files_and_rows(data_dir, tmp_path / 'pipeline.db')
    held = {p for p, v in videos.items() if v.status == "pending"}
    assert held and all("No space left on device" in videos[p].error for p in held)
    assert not {p for p, v in videos.items() if v.status == "failed"}  # nothing failed for good
    assert all(v.status in ("pending", "done") for v in videos.values())
    # Every file under crops/ is a recorded crop or the pack of a done video: no orphan, no temporary.
    packs = {f for f in on_disk if f.endswith(PACK_NAME)}
    assert on_disk - packs == recorded
    assert all(Path(p).stem not in {Path(f).parent.name for f in on_disk} for p in held)

    subprocess.run(["mount", "-o", "remount,size=64m", "tmpfs", str(small_tmpfs)], check=True)  # space freed
    again = run_cli_json(args, env)
    assert again["enqueued"] == len(held)
    assert again["status"]["videos"]["by_status"]["done"] == len(videos) and not again["status"]["stopped"]
    videos, recorded, on_disk = files_and_rows(data_dir, tmp_path / 'pipeline.db')
    assert all(v.status == "done" and v.error is None for v in videos.values())
    assert {f for f in on_disk if not f.endswith(PACK_NAME)} == recorded
