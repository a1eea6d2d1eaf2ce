"""The backbone registry: every architecture the classifier can stand on, one entry each.

An entry says how the backbone is built (``keras.applications``, ``keras-hub``, or a function of
this project), what it expects (its preprocessing as constants, checked against the library by
tests/test_preprocessing.py; its native input side, the default of ``train --image-size``), where
its pretrained weights come from, what each ``--tune`` choice trains on it, and how a prediction
on it is explained. Adding a backbone is one entry here plus its test; nothing else in the code
branches on a backbone's name. A saved model names its backbone in its preprocessing layer
(``workers/training/models.py``), so no caller passes the name beside the model.

Pure data: importing this module imports neither Keras nor TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

KERAS_APPLICATIONS, KERAS_HUB, LOCAL = "keras.applications", "keras-hub", "local"
# What --tune trains. Every backbone takes "all" (its default); a frozen backbone takes "head".
TUNE_ALL, TUNE_LAYERNORM, TUNE_HEAD = "all", "layernorm", "head"
TUNES = (TUNE_ALL, TUNE_LAYERNORM, TUNE_HEAD)
# How `--explain` draws its map: Grad-CAM on a convolutional feature map, or the gradient of the
# fake score over a ViT's patch tokens (workers/training/explain.py).
GRADCAM, PATCH_GRADIENT = "gradcam", "patch-gradient"

_IMAGENET_CAFFE = (True, (1.0, 1.0, 1.0), (-103.939, -116.779, -123.68))  # BGR, ImageNet mean removed
_PASSTHROUGH = (False, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # the model rescales inside itself
_SYMMETRIC = (False, (1 / 127.5,) * 3, (-1.0, -1.0, -1.0))  # x / 127.5 - 1
# OpenAI CLIP: (x / 255 - mean) / std, per channel (keras-hub's CLIPImageConverter uses the same).
_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_CLIP = (False, tuple(1 / (255 * s) for s in _CLIP_STD), tuple(-m / s for m, s in zip(_CLIP_MEAN, _CLIP_STD)))


@dataclass(frozen=True)
class Backbone:
    """One backbone. Model input = channels(image) * scale + offset per channel, where channels()
    reverses RGB to BGR first when ``reverse``: exactly what the library's preprocessing does."""

    name: str
    source: str  # KERAS_APPLICATIONS, KERAS_HUB or LOCAL
    builder: str  # keras.applications class; keras-hub class; or "module:function(image_size)"
    preprocessing: tuple[bool, tuple[float, float, float], tuple[float, float, float]]
    reference: str  # what the constants are checked against: "keras.applications.<module>" or a source
    default_size: int  # `train --image-size` when not given (native, except where 128 was kept)
    weights: str | None  # the pretrained weights --weights pretrained means: "imagenet", a preset, None
    tunes: tuple[str, ...]  # the --tune choices it takes, its default first
    explain: str  # GRADCAM or PATCH_GRADIENT
    about: str  # what it is for, with its source (docs/backbones.md says more)
    # include_top=False weights file Keras downloads (offline users fetch it): {size} is filled in.
    notop_file: str | None = None
    fixed_size: bool = False  # pretrained weights only at default_size (a ViT's position embeddings)
    config: dict | None = None  # a keras-hub encoder's architecture, for --weights none


REGISTRY: dict[str, Backbone] = {entry.name: entry for entry in (
    Backbone("resnet50", KERAS_APPLICATIONS, "ResNet50", _IMAGENET_CAFFE, "keras.applications.resnet50",
             128, "imagenet", (TUNE_ALL, TUNE_HEAD), GRADCAM,
             "train's default since the notebook; ImageNet ResNet-50 (He et al., CVPR 2016).",
             notop_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    Backbone("efficientnetb0", KERAS_APPLICATIONS, "EfficientNetB0", _PASSTHROUGH,
             "keras.applications.efficientnet", 128, "imagenet", (TUNE_ALL, TUNE_HEAD), GRADCAM,
             "the small EfficientNet (Tan & Le, ICML 2019); native 224 px, 128 kept as before.",
             notop_file="efficientnetb0_notop.h5"),
    Backbone("mobilenetv2", KERAS_APPLICATIONS, "MobileNetV2", _SYMMETRIC, "keras.applications.mobilenet_v2",
             128, "imagenet", (TUNE_ALL, TUNE_HEAD), GRADCAM,
             "a light CNN for small GPUs (Sandler et al., CVPR 2018); native 224 px, 128 kept as before.",
             notop_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"),
    Backbone("tiny", LOCAL, "workers.training.tiny:tiny_backbone", _SYMMETRIC, "keras.applications.mobilenet_v2",
             64, None, (TUNE_ALL,), GRADCAM,
             "a 4-block CNN that learns from scratch on a CPU in a minute (the demo, the learning guard)."),
    Backbone("xception", KERAS_APPLICATIONS, "Xception", _SYMMETRIC, "keras.applications.xception",
             299, "imagenet", (TUNE_ALL, TUNE_HEAD), GRADCAM,
             "FaceForensics++'s and DeepfakeBench's baseline (Chollet, CVPR 2017; Rossler et al., ICCV 2019).",
             notop_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    Backbone("efficientnetb4", KERAS_APPLICATIONS, "EfficientNetB4", _PASSTHROUGH,
             "keras.applications.efficientnet", 380, "imagenet", (TUNE_ALL, TUNE_HEAD), GRADCAM,
             "the DFDC winner's and SBI's backbone (Seferbekov 2020; Shiohara & Yamasaki, CVPR 2022).",
             notop_file="efficientnetb4_notop.h5"),
    Backbone("clip-vit-b16", KERAS_HUB, "CLIPVisionEncoder", _CLIP, "OpenAI CLIP image mean/std",
             224, "clip_vit_base_patch16", (TUNE_LAYERNORM, TUNE_HEAD, TUNE_ALL), PATCH_GRADIENT,
             "CLIP ViT-B/16 image encoder (Radford et al., ICML 2021); --tune layernorm is GenD's recipe.",
             fixed_size=True, config=dict(patch_size=16, hidden_dim=768, num_layers=12, num_heads=12,
                                          intermediate_dim=3072)),
    Backbone("clip-vit-l14", KERAS_HUB, "CLIPVisionEncoder", _CLIP, "OpenAI CLIP image mean/std",
             224, "clip_vit_large_patch14", (TUNE_LAYERNORM, TUNE_HEAD, TUNE_ALL), PATCH_GRADIENT,
             "CLIP ViT-L/14, the encoder of Forensics Adapter (CVPR 2025) and GenD (WACV 2026).",
             fixed_size=True, config=dict(patch_size=14, hidden_dim=1024, num_layers=24, num_heads=16,
                                          intermediate_dim=4096)),
)}

BACKBONES = tuple(REGISTRY)
DEFAULT_BACKBONE = "resnet50"
MAX_IMAGE_SIZE = 512


def backbone_entry(name: str) -> Backbone:
    """The registry entry of ``name`` (any case), or ValueError naming the supported ones."""
    entry = REGISTRY.get(str(name).lower())
    if entry is None:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return entry


def notop_weights_file(name: str, image_size: int = 128) -> str | None:
    """Name of the include_top=False weights file Keras downloads, for offline users to fetch.
    MobileNetV2 has one file per input size; other sizes get the 224 one."""
    entry = backbone_entry(name)
    if entry.notop_file is None:
        return None
    return entry.notop_file.format(size=image_size if image_size in (96, 128, 160, 192, 224) else 224)
