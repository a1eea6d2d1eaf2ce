"""Pictures of why: Grad-CAM heatmaps over face crops, and one contact sheet PNG per video.

Grad-CAM (Selvaraju et al., ICCV 2017): the gradient of the fake score (the logit of the fake
probability) with respect to a convolutional feature map, averaged over space, weights that
map's channels; their weighted sum, through a ReLU, shows where the evidence for "fake" lies.

The model is walked as a chain of its top-level layers (input -> [preprocessing, augmentation]
-> backbone -> pooling -> head), which holds for ``build_model``'s models and for models that
carry their preprocessing inside. Inside a nested backbone the map is taken from its last layer
whose output is at least ``MIN_MAP_SIDE`` pixels wide (the very last map of MobileNetV2 at a
64 px input is 2x2: too coarse to show anything).

A ViT backbone (its output a token sequence, e.g. CLIP) has no convolutional map. Its map is the
gradient of the fake score times the patch tokens (gradient x input, summed over the width, through
a ReLU) at the encoder's first token layer (the patch embeddings), one value per patch on the patch
grid: the classifier reads the class token only, so the last layer's patch tokens get no gradient,
while the embeddings' gradient passes through every attention block. It is not an attention map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

MIN_MAP_SIDE = 4
MAX_OVERLAY_ALPHA = 0.6  # where the map peaks; the face stays visible underneath
PROBABILITY_EPSILON = 1e-7


def gradcam(model, images_rgb_uint8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fake probability of each crop (N,), heatmaps (N, S, S) in [0, 1] at the crops' size)."""
    import keras
    import tensorflow as tf

    from shared.preprocessing import preprocess
    from workers.training.inference import model_input

    takes = model_input(model)
    images = np.asarray(images_rgb_uint8)
    if images.ndim == 3:
        images = images[np.newaxis]
    size = takes.image_size
    if images.shape[1:3] != (size, size):
        images = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(images, [size, size], antialias=True)), 0, 255),
                         tf.uint8).numpy()
    x = tf.convert_to_tensor(images.astype(np.float32))
    if takes.preprocess_for is not None:
        x = preprocess(x, takes.preprocess_for)

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    tokens = [i for i, layer in enumerate(layers) if isinstance(layer, keras.Model) and len(layer.output.shape) == 3]
    spatial = [i for i, layer in enumerate(layers) if len(layer.output.shape) == 4]
    if not tokens and not spatial:
        raise ValueError(f"{model.name}: no layer with a spatial (N, H, W, C) output")
    k = tokens[0] if tokens else spatial[-1]
    feature_layer = layers[k]
    inner = _inner_token_model(feature_layer) if tokens else _inner_map_model(feature_layer)

    with tf.GradientTape() as tape:
        h = x
        for layer in layers[:k]:
            h = layer(h, training=False)
        if inner is not None:
            feature_map, h = inner(h, training=False)
        else:
            h = feature_layer(h, training=False)
            feature_map = h
        tape.watch(feature_map)
        for layer in layers[k + 1:]:
            h = layer(h, training=False)
        probability = tf.reshape(tf.cast(h, tf.float32), [-1])
        clipped = tf.clip_by_value(probability, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
        logit = tf.math.log(clipped) - tf.math.log1p(-clipped)
    grads = tf.cast(tape.gradient(logit, feature_map), tf.float32)
    feature_map = tf.cast(feature_map, tf.float32)
    if tokens:  # gradient x patch tokens, on the patch grid (the class token left out)
        side = int(round((feature_map.shape[1] - 1) ** 0.5))
        per_token = tf.nn.relu(tf.reduce_sum(grads * feature_map, axis=-1))[:, -side * side:]
        cam = tf.reshape(per_token, [-1, side, side])
    else:
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
    cam = tf.image.resize(cam[..., tf.newaxis], [size, size], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    heatmaps = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    return probability.numpy(), heatmaps.astype(np.float32)


def _inner_token_model(encoder):
    """For a ViT encoder: a model giving (its first token sequence, the patch embeddings; its output)."""
    import keras

    first = next(inner for inner in encoder.layers
                 if not isinstance(inner, keras.layers.InputLayer) and len(inner.output.shape) == 3)
    return keras.Model(encoder.inputs, [first.output, encoder.output])


def _inner_map_model(layer):
    """For a nested backbone model: a model giving (a finer feature map, the backbone's output)."""
    import keras

    if not isinstance(layer, keras.Model):
        return None
    final_side = layer.output.shape[1]
    if final_side is not None and final_side >= MIN_MAP_SIDE:
        return None
    candidates = [
        inner for inner in layer.layers
        if len(inner.output.shape) == 4 and (inner.output.shape[1] or 0) >= MIN_MAP_SIDE
        and not isinstance(inner, keras.layers.InputLayer)
    ]
    if not candidates:
        return None
    return keras.Model(layer.inputs, [candidates[-1].output, layer.output])


def overlay_caption(heatmap: np.ndarray) -> str:
    """What the overlay shows. Grad-CAM keeps positive evidence for "fake" only, so a crop the model
    finds real often has a blank map: say so in words rather than leave a bare face to puzzle over."""
    return "evidence for fake" if float(np.max(heatmap)) > 0 else "no evidence for fake found"


def contact_sheet(
    images_rgb_uint8: np.ndarray,
    heatmaps: np.ndarray,
    probabilities: Sequence[float],
    path: str | Path,
    *,
    title: str,
    captions: Sequence[str] | None = None,
    threshold: float = 0.5,
    columns: int = 6,
) -> Path:
    """One PNG: every crop beside the same crop under its heatmap, with its fake probability; ``title``
    on top. The heatmap's opacity follows its value, so the face shows through where the map is low
    (an opaque map over a confidently fake crop hid the face it pointed at)."""
    from matplotlib.figure import Figure

    n = len(images_rgb_uint8)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(3.6 * columns, 2.1 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, 2 * columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(n):
        plain, overlay = axes[i // columns, 2 * (i % columns)], axes[i // columns, 2 * (i % columns) + 1]
        image = np.asarray(images_rgb_uint8[i])
        heat = np.asarray(heatmaps[i], dtype=np.float32)
        if heat.shape != image.shape[:2]:
            import cv2

            heat = cv2.resize(heat, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        plain.imshow(image)
        overlay.imshow(image)
        overlay.imshow(heat, cmap="jet", alpha=np.clip(heat, 0, 1) * MAX_OVERLAY_ALPHA, vmin=0, vmax=1)
        p = float(probabilities[i])
        colour = "crimson" if p >= threshold else "seagreen"
        plain.set_title(f"p(fake) {p:.3f}" + (f"\n{captions[i]}" if captions else ""), fontsize=9, color=colour)
        overlay.set_title(overlay_caption(heat), fontsize=8, color="dimgray")
    fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, format="png")
    return path
