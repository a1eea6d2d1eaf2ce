"""``tiny``: a small CNN that learns from scratch on a CPU in a minute, for the demo and the
learning-guard test (ResNet50 stays `train`'s default).

Why it exists (issue #11): MobileNetV2 from scratch on ~300 sample crops, 3-8 epochs, learnt
nothing usable, and in inference mode gave every crop the same probability (measured: spread
0.0 to 3e-7 over 122-128 test crops). Its batch-norm moving statistics (momentum 0.999 in
keras.applications' MobileNetV2) were still at their initial values after a few dozen steps,
and the untrained deep stack below them had collapsed to an input-independent output.

Four conv blocks (32-64-128-128 filters, 3x3, batch norm, ReLU, 2x2 max-pool after the first
three) keep an 8x8 map at a 64 px input, fine enough for Grad-CAM. Batch-norm momentum 0.9:
the moving statistics follow the training batches within ~20 steps, so inference mode sees the
model that was trained. Input: RGB scaled to [-1, 1] (``mobilenet_v2.preprocess_input``).
"""

from __future__ import annotations

FILTERS = (32, 64, 128, 128)
BN_MOMENTUM = 0.9


def tiny_backbone(image_size: int):
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="tiny_input")
    x = inputs
    for i, filters in enumerate(FILTERS):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"tiny_conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"tiny_bn{i}")(x)
        x = keras.layers.ReLU(name=f"tiny_relu{i}")(x)
        if i < len(FILTERS) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"tiny_pool{i}")(x)
    return keras.Model(inputs, x, name="tiny")
