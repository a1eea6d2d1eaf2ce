"""Label and folder conventions of the project (real=0, fake=1) and of Celeb-DF."""

REAL = 0
FAKE = 1
LABEL_NAMES = {REAL: "real", FAKE: "fake"}

# Celeb-DF folders and the label of every video in them.
FOLDER_LABELS = {
    "Celeb-real": REAL,
    "YouTube-real": REAL,
    "Celeb-synthesis": FAKE,
}
TEST_LIST_NAME = "List_of_testing_videos.txt"
# List_of_testing_videos.txt uses the opposite convention: 1 means real, 0 means fake.
TEST_LIST_LABELS = {"1": REAL, "0": FAKE}

VIDEO_SUFFIX = ".mp4"

# MTCNN's five landmarks as database and export columns (x, y each, original frame pixels).
LANDMARK_POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARK_COLUMNS = tuple(f"{point}_{axis}" for point in LANDMARK_POINTS for axis in ("x", "y"))

# Outcome of ingesting one video.
PENDING = "pending"
RUNNING = "running"
DONE = "done"
NO_FACE = "no_face"
FAILED = "failed"
VIDEO_STATUSES = (PENDING, RUNNING, DONE, NO_FACE, FAILED)
FINISHED_STATUSES = (DONE, NO_FACE, FAILED)

# Lifecycle of a training run.
RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_FAILED = "failed"
RUN_STATUSES = (RUN_QUEUED, RUN_RUNNING, RUN_DONE, RUN_FAILED)
RUN_FINISHED = (RUN_DONE, RUN_FAILED)
