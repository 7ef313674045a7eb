"""RepCNN (Kundu et al. 2024, "RepCNN: Micro-sized, Mighty Models for Wakeword Detection", arXiv 2406.02652).

Train a multi-branch CNN, deploy a single-branch one: every convolution is a RepConv2D (main kernel +
smaller kernels + identity, each with BN), which kws_zoo.reparam folds into one conv with bias, so the
deployed model costs what a plain CNN of the same shape costs.

Stack on features [B, time, freq, 1]: a strided 3x3 stem, stages of depthwise-separable blocks
(3x3 depthwise with stride on the first block of a stage, then 1x1 pointwise; ReLU after each),
one dilated (k, 1) depthwise conv over time to widen the temporal context after downsampling, a pool
over the whole map and a dense classifier.

Each preset has a `<name>_plain` twin: the same network trained as plain conv + BN. After
kws_zoo.reparam.reparameterize both are the same graph layer for layer, which is what makes the twin
the baseline that shows what the branches buy.
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.layers.strided_depthwise import depthwise_conv_layer
from kws_zoo.models.common import feature_input, pad_time
from kws_zoo.models.registry import register_model

L = keras.layers


@dataclasses.dataclass(frozen=True)
class RepCnnConfig:
    stem_filters: int = 16
    stem_stride: int = 2  # both axes
    stage_filters: tuple[int, ...] = (24, 32, 56)
    stage_blocks: tuple[int, ...] = (1, 1, 1)
    stage_strides: tuple[int, ...] = (1, 2, 2)  # of the first block's depthwise conv, both axes
    branch_kernels: tuple[tuple[int, int], ...] = ((1, 1), (3, 1), (1, 3))  # beside each 3x3 main kernel
    temporal_kernel: int = 5  # (k, 1) depthwise conv over time after the last stage; 0 leaves it out
    temporal_dilation: int = 2
    dropout: float = 0.1
    plain: bool = False  # uni-branch twin: Conv2D + BN in training, same graph after reparameterize
    # 'valid' or 'causal' to stream (kws_zoo.models.common.TIME_PADDINGS); time_strides=False applies the
    # strides to frequency only, so a streaming step is one frame (see kws_zoo.streaming).
    time_padding: str = "same"
    time_strides: bool = True


def _conv(x, cfg: RepCnnConfig, name: str, *, filters: int | None, kernel: tuple[int, int], strides: int = 1,
          dilation: tuple[int, int] = (1, 1), branches: tuple[tuple[int, int], ...] = ()):
    """One conv position -> ReLU: RepConv2D, or conv + BN in the plain twin. The conv is named `name`
    in both, so after reparameterize (BN folded into the conv) the two graphs match name for name."""
    depthwise = filters is None
    strides = (strides if cfg.time_strides else 1, strides)
    x, padding = pad_time(x, kernel, strides, dilation, cfg.time_padding, f"{name}_")
    if cfg.plain:
        common = dict(strides=strides, padding=padding, dilation_rate=dilation, use_bias=False, name=name)
        conv = depthwise_conv_layer(kernel, **common) if depthwise else L.Conv2D(filters, kernel, **common)
        x = L.BatchNormalization(name=f"{name}_bn")(conv(x))
    else:
        x = RepConv2D(filters, kernel, strides=strides, dilation_rate=dilation, depthwise=depthwise,
                      branch_kernels=branches, padding=padding, name=name)(x)
    return L.ReLU(name=f"{name}_relu")(x)


def build_repcnn(cfg: RepCnnConfig, *, input_shape, num_classes, feature_stats=None) -> keras.Model:
    if not len(cfg.stage_filters) == len(cfg.stage_blocks) == len(cfg.stage_strides):
        raise ConfigError("stage_filters, stage_blocks and stage_strides need one entry per stage")
    inputs, x = feature_input(input_shape, feature_stats)
    branches = tuple(tuple(k) for k in cfg.branch_kernels)
    x = _conv(x, cfg, "stem", filters=cfg.stem_filters, kernel=(3, 3), strides=cfg.stem_stride, branches=branches)
    for s, (filters, blocks, stride) in enumerate(zip(cfg.stage_filters, cfg.stage_blocks, cfg.stage_strides)):
        for b in range(blocks):
            name = f"s{s}b{b}_"
            x = _conv(x, cfg, name + "dw", filters=None, kernel=(3, 3), strides=stride if b == 0 else 1,
                      branches=branches)
            # 1x1 has no smaller kernel; its extra branch is the identity when channels match.
            x = _conv(x, cfg, name + "pw", filters=filters, kernel=(1, 1))
    if cfg.temporal_kernel:
        k = cfg.temporal_kernel
        x = _conv(x, cfg, "temporal", filters=None, kernel=(k, 1), dilation=(cfg.temporal_dilation, 1),
                  branches=tuple((j, 1) for j in range(k - 2, 0, -2)))  # (3,1), (1,1) beside (5,1)
    x = L.Dropout(cfg.dropout, name="dropout")(x)
    # A pool over the whole map (not GlobalAveragePooling2D) keeps the op AVERAGE_POOL_2D, as in DS-CNN.
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(num_classes, name="logits")(x))


# Sizes are inference-form parameters at 12 classes (biases included; the training form has more: BN and
# branch kernels). Input-size independent: the stack ends in a pool over the whole map.
_PRESETS = {
    "repcnn_s": (RepCnnConfig(stem_filters=16, stage_filters=(24, 32, 56)), "5.0k inference params"),
    "repcnn_m": (RepCnnConfig(stem_filters=24, stage_filters=(40, 72, 112)), "15.8k inference params"),
    "repcnn_l": (RepCnnConfig(stem_filters=32, stage_filters=(48, 96, 128), stage_blocks=(1, 1, 2)),
                 "40.9k inference params"),
}
for _name, (_cfg, _size) in _PRESETS.items():
    register_model(_name, family="repcnn", builder=build_repcnn, config=_cfg,
                   description=f"RepCNN, multi-branch in training, single-branch after reparameterize ({_size})")
    register_model(f"{_name}_plain", family="repcnn", builder=build_repcnn,
                   config=dataclasses.replace(_cfg, plain=True),
                   description=f"uni-branch twin of {_name}: same inference graph, trained as conv + BN")
# Streaming twin of RepCNN-S: 'valid' time convs and strides in frequency only. Strided in time too, its 49-frame
# window would not tile (every time-strided layer needs (frames - window) divisible by its stride, and the
# dilated temporal conv needs 9 frames after three halvings). It streams in its inference form: to_streaming
# swaps every RepConv2D for its one fused conv (kws_zoo.layers.plain).
_STREAM = dataclasses.replace(_PRESETS["repcnn_s"][0], time_padding="valid", time_strides=False)
register_model("repcnn_s_stream", family="repcnn", builder=build_repcnn, config=_STREAM, streamable=True,
               description="RepCNN-S for streaming: 'valid' time convs, time stride 1")
register_model("repcnn_s_stream_plain", family="repcnn", builder=build_repcnn,
               config=dataclasses.replace(_STREAM, plain=True), streamable=True,
               description="uni-branch twin of repcnn_s_stream: same inference graph, trained as conv + BN")
