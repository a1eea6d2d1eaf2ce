"""The MTCNN wrapper: a pyramid that honours min_face_size, and compiled stages that agree with
the package's eager ones."""

import cv2
import numpy as np
import pytest

from workers.detector import FastMTCNN, eager_detect, min_face_pixels, pyramid_scales
from workers.faces import LANDMARK_NAMES, detect_faces


@pytest.fixture(scope="module")
def fast():
    return FastMTCNN()


@pytest.fixture(scope="module")
def astronaut_rgb():
    from skimage import data

    return data.astronaut()  # 512x512, one face of ~100 px


@pytest.fixture(scope="module")
def hopper_rgb():
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(cv2.resize(image, (384, 480)), cv2.COLOR_BGR2RGB)


def test_every_level_of_the_pyramid_is_at_least_twelve_pixels():
    for min_face in (12, 20, 23, 40, 60, 80, 120):
        scales = pyramid_scales(480, 254, min_face)
        assert scales and scales[0] == pytest.approx(12 / min_face)
        assert min(254 * s for s in scales) >= 12
        assert 254 * scales[-1] * 0.709 < 12  # and no level that would still fit is left out


def test_the_package_pyramid_goes_under_twelve_pixels_above_twenty():
    from mtcnn.utils.images import build_scale_pyramid

    assert min(254 * build_scale_pyramid(480, 254, 20, 0.709)) >= 12
    assert min(254 * build_scale_pyramid(480, 254, 40, 0.709)) < 12  # the bug the wrapper avoids


def test_an_image_smaller_than_the_minimum_face_has_no_pyramid():
    assert pyramid_scales(30, 30, 40) == []


def test_min_face_pixels_never_goes_under_the_package_default():
    assert min_face_pixels(480, 254, 0.0) == 20
    assert min_face_pixels(480, 254, 0.2) == pytest.approx(50.8)


def test_a_min_face_size_above_22_now_finds_the_face(fast, astronaut_rgb):
    # The `mtcnn` package fails here (its smallest pyramid level is under PNet's window; how it
    # fails, returning nothing or raising, depends on the TensorFlow version, so it is not
    # asserted). The wrapper's pyramid finds the face.
    for min_face in (40, 60, 80):
        rows = fast.detect([astronaut_rgb], min_face)
        rows = rows[rows[:, 5] >= 0.95]
        assert len(rows) == 1, min_face
        x1, y1, x2, y2 = rows[0, 1:5]
        assert 150 < (x1 + x2) / 2 < 260 and 50 < (y1 + y2) / 2 < 170


def test_compiled_stages_agree_with_the_eager_package(fast, astronaut_rgb, hopper_rgb):
    # One image at a time and a batch of same-sized frames (a video's), at the package's default.
    hopper_shifted = np.roll(hopper_rgb, (17, -23), axis=(0, 1))
    for images in ([astronaut_rgb], [hopper_rgb], [hopper_rgb, hopper_shifted, np.zeros_like(hopper_rgb)]):
        eager = eager_detect(fast.mtcnn, images)
        compiled = fast.detect(images)
        eager, compiled = (r[np.lexsort((r[:, 1], r[:, 0]))] for r in (eager, compiled))
        assert len(compiled) == len(eager) >= 1
        np.testing.assert_array_equal(compiled[:, 0], eager[:, 0])
        np.testing.assert_allclose(compiled[:, 1:5], eager[:, 1:5], atol=2.0)  # boxes
        np.testing.assert_allclose(compiled[:, 6:16], eager[:, 6:16], atol=2.0)  # landmarks
        np.testing.assert_allclose(compiled[:, 5], eager[:, 5], atol=1e-3)


def test_frames_without_faces_give_no_rows(fast):
    assert fast.detect([np.zeros((120, 160, 3), np.uint8)]).shape == (0, 16)
    assert fast.detect([]).shape == (0, 16)


def test_landmarks_are_in_original_frame_pixels(fast, astronaut_rgb):
    face = cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR)
    big = cv2.resize(face, (1024, 1024))
    (small,), (shrunk,) = (detect_faces([img], min_confidence=0.95, max_side=512, detector=fast)
                           for img in (face, big))
    assert len(small) == len(shrunk) == 1
    assert len(small[0].landmarks) == len(LANDMARK_NAMES) == 5
    for (sx, sy), (bx, by) in zip(small[0].landmarks, shrunk[0].landmarks):
        assert abs(bx - 2 * sx) <= 4 and abs(by - 2 * sy) <= 4
    box = shrunk[0].box
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = shrunk[0].landmarks
    assert box.x < lx < rx < box.x + box.w  # left eye (image left) before the right eye
    assert box.y < ly < ny < mly < box.y + box.h  # eyes above the nose above the mouth


def test_min_face_fraction_skips_smaller_faces(fast, astronaut_rgb):
    face = cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR)  # face ~100 px of a 512 px frame: ~0.2
    found = detect_faces([face], min_confidence=0.95, max_side=512, min_face_fraction=0.1, detector=fast)
    assert len(found[0]) == 1
    missed = detect_faces([face], min_confidence=0.95, max_side=512, min_face_fraction=0.6, detector=fast)
    assert missed == [[]]


def test_the_eager_path_is_still_available(fast, astronaut_rgb):
    face = cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR)
    eager = detect_faces([face], min_confidence=0.95, max_side=512, detector=fast, compiled=False)
    compiled = detect_faces([face], min_confidence=0.95, max_side=512, detector=fast)
    assert len(eager[0]) == len(compiled[0]) == 1
    a, b = eager[0][0].box, compiled[0][0].box
    assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w), abs(a.h - b.h)) <= 2


def test_one_trace_serves_every_frame_size_and_batch(fast, astronaut_rgb, hopper_rgb):
    fast.warm_up()
    stages = (fast._pnet_level, fast._rnet, fast._onet)
    traces = [stage.experimental_get_tracing_count() for stage in stages]
    for images in ([astronaut_rgb], [hopper_rgb] * 3, [cv2.resize(hopper_rgb, (200, 250))] * 2):
        fast.detect(images, 30)
    assert [stage.experimental_get_tracing_count() for stage in stages] == traces == [1, 1, 1]


def test_importing_mtcnn_leaves_out_what_keras_would_import_for_plots_and_scikit_learn():
    # In a fresh process, as a worker's parent does before the fork (workers/lifecycle.py).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from workers.detector import KERAS_OPTIONAL_IMPORTS, import_mtcnn\n"
        "import_mtcnn()\n"
        "assert 'tensorflow' in sys.modules and 'keras' in sys.modules\n"
        "assert not [n for n in KERAS_OPTIONAL_IMPORTS if n in sys.modules], sys.modules.keys()\n"
        "import gc\n"
        "assert gc.isenabled()\n"  # off for the import only
        "import matplotlib.pyplot, sklearn.metrics\n"  # still importable afterwards
        "from workers.detector import FastMTCNN\n"
        "import numpy as np\n"
        "assert FastMTCNN().detect([np.zeros((60, 80, 3), np.uint8)]).shape == (0, 16)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
