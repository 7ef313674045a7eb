"""DS-CNN (Zhang et al. 2017, "Hello Edge"), as the MLPerf Tiny keyword-spotting reference.

One strided standard convolution, then depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each
followed by BN + ReLU), global average pooling and a dense classifier.
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras
from kws_zoo.models.common import conv_bn_relu, feature_input
from kws_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DsCnnConfig:
    filters: int = 64
    first_kernel: tuple[int, int] = (10, 4)  # (time, frequency)
    first_stride: tuple[int, int] = (2, 2)
    blocks: int = 4
    dropout_first: float = 0.2
    dropout_last: float = 0.4
    bn_momentum: float = 0.99  # lower it for very short runs, where moving statistics lag behind
    time_padding: str = "same"  # 'valid' or 'causal' to stream (kws_zoo.models.common.TIME_PADDINGS)


def build_ds_cnn(cfg: DsCnnConfig, *, input_shape, num_classes, feature_stats=None) -> keras.Model:
    inputs, x = feature_input(input_shape, feature_stats)
    x = conv_bn_relu(x, cfg.filters, tuple(cfg.first_kernel), tuple(cfg.first_stride), name="stem_",
                     bn_momentum=cfg.bn_momentum, time_padding=cfg.time_padding)
    x = keras.layers.Dropout(cfg.dropout_first, name="stem_dropout")(x)
    for i in range(cfg.blocks):
        x = conv_bn_relu(x, None, 3, name=f"block{i}_", depthwise=True, bn_momentum=cfg.bn_momentum,
                         time_padding=cfg.time_padding)
        x = conv_bn_relu(x, cfg.filters, 1, name=f"block{i}_pw_", bn_momentum=cfg.bn_momentum)
    x = keras.layers.Dropout(cfg.dropout_last, name="head_dropout")(x)
    # A pool over the whole map (not GlobalAveragePooling2D) keeps the op AVERAGE_POOL_2D, as in MLPerf.
    x = keras.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits)


register_model("ds_cnn", family="ds_cnn", builder=build_ds_cnn, config=DsCnnConfig(),
               description="MLPerf Tiny reference DS-CNN: conv 10x4/64 stride 2, 4 DS blocks of 64")
register_model("ds_cnn_small", family="ds_cnn", builder=build_ds_cnn, config=DsCnnConfig(filters=32),
               description="DS-CNN with 32 channels (about a third of the reference's size)")
# Streaming twin: no time padding, so the streaming graph equals this model on every window; time stride 1,
# so a step is one feature frame (a time stride would make a step several frames and its ring buffers
# no cheaper). Non-streaming it costs about twice the reference's MACs, streaming a small fraction.
register_model("ds_cnn_stream", family="ds_cnn", builder=build_ds_cnn,
               config=DsCnnConfig(first_stride=(1, 2), time_padding="valid"), streamable=True,
               description="DS-CNN for streaming: 'valid' time convs, time stride 1 (receptive field 18 frames)")
