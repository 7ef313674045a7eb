"""Raw-waveform KWS: a SincConv filterbank front end, then time-channel separable conv blocks.

The line of Mittermaier et al. 2020 (SincConv + depthwise-separable convs on raw audio) and the
SincConv search space of arXiv 2104.06666, with one deliberate change: those compress the filterbank
output with log(|x|), which has no int8 TFLite kernel (it would leave a float island). Here the
filterbank is followed by BN + ReLU (half-wave rectification) + average pooling, a smoothed band
envelope that is all int8 ops.

stem      [B, samples] -> [B, samples, 1, 1]; SincConv -> BN -> ReLU -> AvgPool(sinc_pool)
blocks    (channels, kernel, stride): depthwise (kernel, 1) -> 1x1 conv -> BN -> ReLU -> AvgPool(2)
head      dropout, average over time, dense -> classes

Input is raw 16 kHz audio, not features: `feature_stats` is ignored (a learned front end has no
fixed feature statistics; scale the audio to [-1, 1] as kws_zoo.data.audio does). The int8 model thus
takes 8-bit audio (its input scale comes from the calibration clips).
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError, ModelError
from kws_zoo.layers.sinc_conv import SincConv, sinc_to_plain  # noqa: F401 (re-export)
from kws_zoo.layers.strided_depthwise import depthwise_conv_layer
from kws_zoo.models.registry import register_model

L = keras.layers


@dataclasses.dataclass(frozen=True)
class SincKwsConfig:
    sinc_filters: int = 40
    sinc_kernel: int = 101        # 6.3 ms at 16 kHz
    sinc_stride: int = 8
    sinc_pool: int = 4
    blocks: tuple[tuple[int, int, int], ...] = ((144, 25, 2), (144, 9, 1), (144, 9, 1), (144, 9, 1))
    block_pool: int = 2
    dropout: float = 0.2
    bn_momentum: float = 0.9      # Keras' 0.99 lags the SincConv's changing output scale: validation sat at chance
    sample_rate: int = 16000
    raw_waveform: bool = True
    default_input_shape: tuple[int] = (16000,)

    def __post_init__(self):
        if not self.raw_waveform:
            raise ConfigError("sinc_kws consumes raw audio; raw_waveform must be True")
        if not self.blocks or any(len(b) != 3 or min(b) < 1 for b in self.blocks):
            raise ConfigError(f"blocks must be (channels, kernel, stride) triples, got {self.blocks}")


def _pool(x, size: int, name: str):
    size = min(size, x.shape[1])  # never pool a short sequence away
    return L.AveragePooling2D((size, 1), name=name)(x) if size > 1 else x


def build_sinc_kws(cfg: SincKwsConfig, *, input_shape, num_classes, feature_stats=None) -> keras.Model:
    del feature_stats  # raw audio: see the module docstring
    if len(input_shape) != 1:
        raise ModelError(f"sinc_kws takes raw audio (samples,), got input_shape {tuple(input_shape)}")
    inputs = keras.Input(shape=tuple(input_shape), name="waveform")
    x = L.Reshape((input_shape[0], 1, 1), name="to_time_axis")(inputs)
    x = SincConv(cfg.sinc_filters, cfg.sinc_kernel, cfg.sinc_stride, cfg.sample_rate, name="sinc")(x)
    x = L.BatchNormalization(momentum=cfg.bn_momentum, name="sinc_bn")(x)
    x = L.ReLU(name="sinc_relu")(x)
    x = _pool(x, cfg.sinc_pool, "sinc_pool")
    for i, (channels, kernel, stride) in enumerate(cfg.blocks):
        name = f"b{i + 1}_"
        x = depthwise_conv_layer((kernel, 1), strides=(stride, 1), padding="same", use_bias=False,
                                 name=f"{name}dw")(x)
        x = L.Conv2D(channels, 1, use_bias=False, name=f"{name}pw")(x)
        x = L.BatchNormalization(momentum=cfg.bn_momentum, name=f"{name}bn")(x)
        x = L.ReLU(name=f"{name}relu")(x)
        x = _pool(x, cfg.block_pool, f"{name}pool")
    x = L.Dropout(cfg.dropout, name="head_dropout")(x)
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    logits = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits)


register_model("sinc_kws_75k", family="sinc_kws", builder=build_sinc_kws, config=SincKwsConfig(),
               streamable=False,
               description="SincConv 40x101/8 on raw 16 kHz audio + 4 separable blocks of 144 (~75k)")
register_model("sinc_kws_small", family="sinc_kws", builder=build_sinc_kws,
               config=SincKwsConfig(sinc_filters=24, sinc_stride=10,
                                    blocks=((64, 25, 2), (64, 9, 1), (64, 9, 1))),
               streamable=False,
               description="SincConv 24x101/10 on raw 16 kHz audio + 3 separable blocks of 64 (~13k)")
