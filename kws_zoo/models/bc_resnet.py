"""BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting").

Axes: kws_zoo features are [B, time, freq, C], time first, where the paper draws (freq, time). So the
paper's "frequency-depthwise 3x1" conv is a (1, 3) kernel here and its "temporal 1x3" a (3, 1) kernel.

BC-ResBlock, on x [B, T, F, C]:
    f2   = SSN(freq-depthwise (1,3) conv(x))          2D part: per-band features, stride 2 in freq at some stages
    f1   = 1x1 conv(swish(BN(time-depthwise (3,1) dilated conv(mean over freq of f2))))  + SpatialDropout
    out  = ReLU(f2 + broadcast_freq(f1) [+ x])          identity only when shapes are unchanged
A transition block (first block of every stage, where channels change) starts with 1x1 conv + BN + ReLU
and has no identity. Network: 5x5 conv stride 2 in freq to 2b channels; stages of (2, 2, 4, 4) blocks with
(b, 1.5b, 2b, 2.5b) channels and time dilation (1, 2, 4, 8); freq stride 2 in the first block of stages 2
and 3; then a 5x5 depthwise conv unpadded in freq (5 bins -> 1), 1x1 conv to 4b + BN + ReLU, average over
time and freq, and a dense layer (the paper's 1x1 conv with bias). b = 8 * tau; BC-ResNet-tau.

Sizes at 12 classes, 40 mel bins (trainable parameters, as the paper counts them): 9.2k, 17.2k, 27.3k,
54.2k, 188k, 321k for tau = 1, 1.5, 2, 3, 6, 8; tests/test_bc_resnet.py checks them.
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.strided_depthwise import depthwise_conv_layer
from kws_zoo.layers.subspectral_norm import SubSpectralNorm
from kws_zoo.models.common import feature_input, pad_time
from kws_zoo.models.registry import register_model

L = keras.layers


@dataclasses.dataclass(frozen=True)
class BcResNetConfig:
    base_channels: int = 8  # b = 8 * tau, the paper's width unit
    stage_blocks: tuple[int, ...] = (2, 2, 4, 4)
    stage_widths: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5)  # channels of stage i: int(width * b)
    stage_dilations: tuple[int, ...] = (1, 2, 4, 8)  # of the temporal conv
    freq_stride_stages: tuple[int, ...] = (1, 2)  # 0-based stages whose first block halves freq
    sub_bands: int = 5  # of SubSpectralNorm
    dropout: float = 0.1  # channel-wise (spatial) dropout at the end of f1
    # 40 log-mel bins are needed: every SSN splits its bins into 5 bands (40 -> 20, 10, 5) and the final
    # 5x5 conv reduces the last 5 bins to 1. 98 frames = 1 s at 30 ms window / 10 ms hop (the default frontend).
    default_input_shape: tuple[int, int] = (98, 40)
    # 'valid' or 'causal' to stream (kws_zoo.models.common.TIME_PADDINGS). 'valid' shortens the time axis
    # by each temporal conv's reach, so branches that skip a conv are cropped at the oldest frames to align.
    time_padding: str = "same"


def _conv_bn(x, filters: int, kernel, name: str, activation: str | None = "relu", strides=1, time_padding="same"):
    x, padding = pad_time(x, kernel, strides, 1, time_padding, name)
    x = L.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}conv")(x)
    x = L.BatchNormalization(name=f"{name}bn")(x)
    return L.Activation(activation, name=f"{name}{activation}")(x) if activation else x


def _crop_to(x, frames: int, name: str):
    """x without its oldest frames beyond `frames` (a no-op unless 'valid' time padding shortened a branch)."""
    extra = x.shape[1] - frames
    return L.Cropping2D(((extra, 0), (0, 0)), name=name)(x) if extra else x


def bc_res_block(x, channels: int, *, freq_stride: int, dilation: int, sub_bands: int, dropout: float,
                 name: str, time_padding: str = "same"):
    transition = x.shape[-1] != channels
    shortcut = x
    if transition:
        x = _conv_bn(x, channels, 1, name=f"{name}transition_")
    # 2D part: frequency-depthwise conv, (1, 3) over (time, freq); SSN keeps per-band statistics.
    x = depthwise_conv_layer((1, 3), strides=(1, freq_stride), padding="same", use_bias=False,
                             name=f"{name}freq_dw")(x)
    f2 = SubSpectralNorm(sub_bands, name=f"{name}ssn")(x)
    # 1D part on the frequency average: temporal depthwise (3, 1) dilated conv, BN, swish, 1x1 conv.
    y = L.AveragePooling2D(pool_size=(1, f2.shape[2]), name=f"{name}freq_mean")(f2)
    y, padding = pad_time(y, (3, 1), 1, (dilation, 1), time_padding, f"{name}time_")
    y = L.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding=padding, use_bias=False,
                          name=f"{name}time_dw")(y)
    y = L.BatchNormalization(name=f"{name}time_bn")(y)
    # x * sigmoid(x): int8 TFLite makes it LOGISTIC + MUL, both in TFLM.
    y = L.Activation("swish", name=f"{name}swish")(y)
    y = L.Conv2D(channels, 1, use_bias=False, name=f"{name}pw")(y)
    y = L.SpatialDropout2D(dropout, name=f"{name}dropout")(y)
    f2 = _crop_to(f2, y.shape[1], f"{name}f2_crop")
    x = L.Add(name=f"{name}broadcast_add")([f2, y])  # [B,T,F,C] + [B,T,1,C]: broadcast over frequency
    if not transition:
        x = L.Add(name=f"{name}residual")([x, _crop_to(shortcut, x.shape[1], f"{name}shortcut_crop")])
    return L.ReLU(name=f"{name}relu")(x)


def build_bc_resnet(cfg: BcResNetConfig, *, input_shape, num_classes, feature_stats=None) -> keras.Model:
    if not len(cfg.stage_blocks) == len(cfg.stage_widths) == len(cfg.stage_dilations):
        raise ConfigError("stage_blocks, stage_widths and stage_dilations need one entry per stage")
    bins = input_shape[-1]
    halvings = 1 + len(cfg.freq_stride_stages)
    if len(input_shape) != 2 or bins % (cfg.sub_bands * 2 ** halvings):
        raise ModelError(f"BC-ResNet needs (frames, bins) with bins a multiple of {cfg.sub_bands * 2 ** halvings} "
                         f"(SubSpectralNorm bands after {halvings} halvings), got {tuple(input_shape)}; "
                         f"the paper's input is {cfg.default_input_shape}")
    b = cfg.base_channels
    inputs, x = feature_input(input_shape, feature_stats)
    x = _conv_bn(x, 2 * b, 5, name="head_", strides=(1, 2), time_padding=cfg.time_padding)
    for s, (blocks, width, dilation) in enumerate(zip(cfg.stage_blocks, cfg.stage_widths, cfg.stage_dilations)):
        for i in range(blocks):
            stride = 2 if i == 0 and s in cfg.freq_stride_stages else 1
            x = bc_res_block(x, int(width * b), freq_stride=stride, dilation=dilation, sub_bands=cfg.sub_bands,
                             dropout=cfg.dropout, name=f"s{s}b{i}_", time_padding=cfg.time_padding)
    # Classifier: 5x5 depthwise, padded in time only, so 5 bins become 1; then 1x1 conv, pool, dense.
    if cfg.time_padding == "same":
        x = L.ZeroPadding2D(((2, 2), (0, 0)), name="tail_pad")(x)
    elif cfg.time_padding == "causal":
        x = L.ZeroPadding2D(((4, 0), (0, 0)), name="tail_pad")(x)
    x = L.DepthwiseConv2D(5, padding="valid", use_bias=False, name="tail_dw")(x)
    x = _conv_bn(x, 4 * b, 1, name="tail_")
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(num_classes, name="logits")(x))


for _tau, _suffix, _size in [(1, "1", "9.2k"), (1.5, "1_5", "17.2k"), (2, "2", "27.3k"), (3, "3", "54.2k"),
                             (6, "6", "188k"), (8, "8", "321k")]:
    register_model(f"bc_resnet_{_suffix}", family="bc_resnet", builder=build_bc_resnet,
                   config=BcResNetConfig(base_channels=int(8 * _tau)),
                   description=f"BC-ResNet-{_tau} (tau={_tau}), {_size} params, input (98 frames, 40 mel bins)")
# Streaming twin of BC-ResNet-1: 'valid' time convs, so the streaming graph equals the model on every window.
# The paper's dilations (1, 2, 4, 8) reach 117 frames, more than the 98-frame window, so this one uses
# (1, 2, 2, 4): a 69-frame (0.7 s) receptive field, 30 positions averaged. time_padding='causal' streams the
# paper's dilations too, equal to the model only for a stream's first window.
register_model("bc_resnet_1_stream", family="bc_resnet", builder=build_bc_resnet,
               config=BcResNetConfig(stage_dilations=(1, 2, 2, 4), time_padding="valid"), streamable=True,
               description="BC-ResNet-1 for streaming: 'valid' time convs, dilations (1, 2, 2, 4)")
