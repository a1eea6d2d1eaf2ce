"""The backbone registry (shared/backbones.py): one entry per backbone, nothing else branches on a
name; each backbone's default size, --tune and weights; every new backbone trains, saves, reloads in
safe mode, predicts, explains and exports at a small size on the CPU; CLIP through keras-hub with a
small random configuration and a preset the test saves itself (no download)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math
import re
from pathlib import Path

import numpy as np
import pytest

from shared.backbones import BACKBONES, KERAS_APPLICATIONS, KERAS_HUB, LOCAL, MAX_IMAGE_SIZE, REGISTRY, TUNES
from shared.errors import InputError
from shared.train_config import TrainConfig, upscale_warning

ROOT = Path(__file__).resolve().parents[1]


# --- the registry ---------------------------------------------------------------------------


def test_every_entry_is_complete():
    for name, entry in REGISTRY.items():
        assert entry.name == name
        assert entry.source in (KERAS_APPLICATIONS, KERAS_HUB, LOCAL)
        assert 32 <= entry.default_size <= MAX_IMAGE_SIZE
        assert entry.tunes and set(entry.tunes) <= set(TUNES) and "all" in entry.tunes
        assert entry.about and entry.reference
        assert entry.source != KERAS_HUB or entry.config  # --weights none needs the architecture


def test_no_code_outside_the_registry_branches_on_a_backbone_name():
    names = "|".join(re.escape(name) for name in BACKBONES)
    branch = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    offenders = []
    for package in ("shared", "db", "workers", "orchestrator"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "backbones.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if branch.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("backbone, size", [("resnet50", 128), ("xception", 299), ("efficientnetb4", 380),
                                            ("clip-vit-b16", 224), ("clip-vit-l14", 224), ("tiny", 64)])
def test_the_default_image_size_comes_from_the_entry(backbone, size):
    weights = "none" if backbone == "tiny" else "imagenet"
    config = TrainConfig.from_options({"backbone": backbone, "weights": weights})
    assert config.image_size == size
    assert config.tune == REGISTRY[backbone].tunes[0]
    assert TrainConfig.from_options({"backbone": backbone, "weights": weights, "image_size": 96}).image_size == 96


def test_image_size_goes_up_to_512_and_tune_must_be_offered():
    assert TrainConfig.from_options({"image_size": "512"}).image_size == 512
    for bad in (513, 31, "big", 64.5):
        with pytest.raises(InputError, match="--image-size"):
            TrainConfig.from_options({"image_size": bad})
    with pytest.raises(InputError, match="--tune layernorm is not offered for resnet50"):
        TrainConfig.from_options({"backbone": "resnet50", "tune": "layernorm"})
    assert TrainConfig.from_options({"backbone": "resnet50", "tune": "head"}).tune == "head"
    with pytest.raises(InputError, match="no pretrained weights"):
        TrainConfig.from_options({"backbone": "tiny"})
    assert TrainConfig.parse_pairs(["tune=head", "image-size=256"]) == {"tune": "head", "image_size": 256}


def test_a_model_reading_larger_crops_than_stored_says_so():
    assert upscale_warning(128, 128) is None and upscale_warning(128, 256) is None and upscale_warning(299, None) is None
    message = upscale_warning(299, 128)
    assert message.startswith("UPSCALED CROPS") and "2.34x" in message and "--size 299" in message


# --- building, tuning, the whole path for each new backbone -----------------------------------


def crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def whole_path(model, tmp_path: Path, size: int, *, export_tflite: bool = True) -> None:
    """Train one step, save, reload in safe mode, predict the same, explain, export."""
    from workers.training.explain import gradcam
    from workers.training.export import export_model, load_export
    from workers.training.inference import load_model, model_input, predict_probabilities

    images, labels = crops(4, size), np.array([0, 1, 0, 1], np.float32)
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")

    loaded = load_model(tmp_path / "model.keras")
    takes = model_input(loaded)
    assert takes.preprocesses_itself and takes.image_size == size
    assert takes.backbone == model.name.removeprefix("deepfake_")
    expected = model.predict(images, verbose=0).reshape(-1)
    np.testing.assert_allclose(predict_probabilities(loaded, images), expected, atol=1e-5)

    probabilities, heatmaps = gradcam(loaded, images)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)
    assert heatmaps.shape == (4, size, size) and heatmaps.min() >= 0 and heatmaps.max() <= 1 + 1e-6
    # Each map is blank (nothing in the crop raised the fake logit: Grad-CAM keeps positive evidence
    # only, and a random network may have none) or scaled to peak at 1.
    peaks = heatmaps.reshape(4, -1).max(axis=1)
    assert np.all((peaks == 0) | (np.abs(peaks - 1) < 1e-5)), peaks

    for fmt in ("savedmodel", "tflite") if export_tflite else ("savedmodel",):
        described = export_model(loaded, tmp_path / fmt, fmt, threshold=0.5)
        assert described["backbone"] == takes.backbone
        np.testing.assert_allclose(load_export(tmp_path / fmt)(images), expected, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("backbone, size", [("xception", 71), ("efficientnetb4", 32)])
def test_new_cnn_backbones_train_save_reload_predict_explain_export(backbone, size, tmp_path):
    from workers.training.models import build_model

    model = build_model(backbone, weights="none", image_size=size, seed=1)
    assert model.name == f"deepfake_{backbone}"
    whole_path(model, tmp_path, size, export_tflite=False)


def test_head_tuning_freezes_a_cnn_backbone():
    from workers.training.models import backbone_layer, build_model, trainable_parameters

    model = build_model("mobilenetv2", weights="none", image_size=32, tune="head")
    assert trainable_parameters(model) == 1280 + 1  # the Dense head on MobileNetV2's 1280 pooled features
    assert trainable_parameters(build_model("mobilenetv2", weights="none", image_size=32)) > 2_000_000
    with pytest.raises(ValueError, match="not offered"):
        build_model("tiny", weights="none", image_size=32, tune="layernorm")


# --- CLIP through keras-hub -----------------------------------------------------------------

keras_hub = pytest.importorskip("keras_hub")

WIDTH, SIZE = 32, 32


def small_clip_encoder(image_size: int = SIZE):
    """A 2-layer CLIP vision encoder, width 32, patch 16, random weights: 4 patches + the class token."""
    return keras_hub.models.CLIPVisionEncoder(patch_size=16, hidden_dim=WIDTH, num_layers=2, num_heads=2,
                                              intermediate_dim=64, image_shape=(image_size, image_size, 3))


def test_layernorm_tuning_trains_exactly_the_layernorm_scales_and_biases_and_the_head():
    import keras

    from workers.training.models import backbone_layer, build_model, trainable_parameters

    # pre-norm + 2 per block x 2 blocks + the final norm: 6 LayerNorms of gamma and beta (32 each).
    layernorm = 6 * 2 * WIDTH
    head = WIDTH + 1
    counts = {}
    for tune in ("layernorm", "head", "all"):
        model = build_model("clip-vit-b16", weights="none", image_size=SIZE, base=small_clip_encoder(), tune=tune)
        counts[tune] = trainable_parameters(model)
        if tune == "layernorm":
            trainable = {id(v) for v in model.trainable_weights}
            norms = [layer for layer in backbone_layer(model)._flatten_layers()
                     if isinstance(layer, keras.layers.LayerNormalization)]
            assert len(norms) == 6 and all(id(v) in trainable for layer in norms for v in layer.weights)
            before = [v.numpy().copy() for v in model.weights]
            model.fit(crops(4, SIZE), np.array([0, 1, 0, 1], np.float32), batch_size=4, epochs=1, verbose=0)
            changed = {v.path for v, old in zip(model.weights, before) if not np.array_equal(v.numpy(), old)}
            assert changed and all(("layer_norm" in p or "fake_probability" in p) for p in changed), changed
    assert counts["layernorm"] == layernorm + head
    assert counts["head"] == head
    encoder = small_clip_encoder()
    assert counts["all"] == sum(math.prod(v.shape) for v in encoder.trainable_weights) + head


def test_clip_model_trains_saves_reloads_predicts_explains_and_exports(tmp_path):
    from workers.training.models import build_model

    model = build_model("clip-vit-b16", weights="none", image_size=SIZE, base=small_clip_encoder(), seed=2)
    whole_path(model, tmp_path, SIZE)


def test_clip_weights_from_a_local_preset_directory(tmp_path):
    from workers.training.models import WeightsUnavailableError, backbone_layer, build_model

    saved = small_clip_encoder()
    saved.save_to_preset(str(tmp_path / "preset"))

    model = build_model("clip-vit-b16", weights=tmp_path / "preset", image_size=SIZE)
    encoder = backbone_layer(model)
    assert [w.shape for w in encoder.weights] == [w.shape for w in saved.weights]
    for loaded, original in zip(encoder.weights, saved.weights):
        np.testing.assert_array_equal(loaded.numpy(), original.numpy())
    with pytest.raises(WeightsUnavailableError, match="takes 32 px images: use --image-size 32"):
        build_model("clip-vit-b16", weights=tmp_path / "preset", image_size=64)
    with pytest.raises(WeightsUnavailableError, match="no keras-hub preset directory"):
        build_model("clip-vit-b16", weights=tmp_path / "missing", image_size=SIZE)
    config = TrainConfig.from_options({"backbone": "clip-vit-b16", "weights": str(tmp_path / "preset"),
                                       "image_size": SIZE}, check_files=True)
    assert config.weights == str((tmp_path / "preset").resolve()) and config.tune == "layernorm"


@pytest.mark.parametrize("backbone", ["clip-vit-b16", pytest.param("efficientnetb0", marks=pytest.mark.slow)])  # XLA: ~5 min
def test_new_backbones_train_under_mixed_precision_and_xla(backbone):
    """`--mixed-precision` and `--jit` on a keras-hub ViT and a keras.applications CNN: the backbone
    computes in float16 under a loss-scaling optimizer, XLA stays on, the probabilities stay float32."""
    import keras

    from workers.training.inference import predict_probabilities
    from workers.training.models import backbone_layer, build_model

    base = None
    if backbone.startswith("clip"):
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_float16")  # as build_model builds a real preset
        try:
            base = small_clip_encoder()
        finally:
            keras.mixed_precision.set_global_policy(previous)
    model = build_model(backbone, weights="none", image_size=SIZE, base=base, mixed_precision=True, jit_compile=True)
    images = crops(4, SIZE)
    loss = model.fit(images, np.array([0, 1, 0, 1], np.float32), batch_size=4, epochs=1, verbose=0).history["loss"][0]

    assert np.isfinite(loss) and model.jit_compile is True
    assert backbone_layer(model).dtype_policy.name == "mixed_float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    probabilities = predict_probabilities(model, images)
    assert probabilities.dtype == np.float32 and np.all((probabilities > 0) & (probabilities < 1))
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.integration
def test_predict_explains_a_clip_run_through_the_cli(local_db, sample_root, tmp_path):
    """`orchestrator predict --explain` on a run whose model is a keras-hub CLIP encoder (small, random
    weights, saved as `train` saves it): a verdict per video and a contact sheet of gradient maps."""
    import json

    from db.models import Run
    from db.session import session_scope
    from tests.support import pipeline_env, run_cli
    from workers.training.models import build_model

    model = build_model("clip-vit-b16", weights="none", image_size=SIZE, base=small_clip_encoder(), seed=3)
    model.save(tmp_path / "clip.keras")
    with session_scope() as session:
        session.add(Run(id="clip", status="done", config={"backbone": "clip-vit-b16", "split": "video"},
                        artifacts={"model": str(tmp_path / "clip.keras")}))
    video = sample_root / "Celeb-real" / "id0_0000.mp4"
    result = run_cli(["predict", str(video), "--run", "clip", "--explain", str(tmp_path / "why"), "--json"],
                     pipeline_env(DATA_DIR=local_db.data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    [verdict] = json.loads(result.stdout)
    assert verdict["faces"] > 0 and 0 <= verdict["fake_probability"] <= 1
    assert len(verdict["crop_probabilities"]) == verdict["faces"]
    assert Path(verdict["explanation"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
