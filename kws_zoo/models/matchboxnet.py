"""MatchboxNet (Majumdar & Ginsburg 2020), optionally with constant ternary pointwise convolutions.

Features [frames, bins] are read as a 1-D sequence with `bins` channels ([B, T, 1, bins]); every
convolution is a time-channel separable one: a depthwise (k, 1) conv over time, then a 1x1 conv
mixing channels, then BatchNorm. (Conv2D/DepthwiseConv2D with (k, 1) kernels, not Conv1D, because
TFMOT's QAT registry does not handle Conv1D.)

prologue  separable conv k=11 -> 128, BN, ReLU
B blocks  R sub-blocks each (kernel 13, 15, 17, ... for block 1, 2, 3, ...): separable conv -> C, BN,
          ReLU, dropout; in the last sub-block a 1x1 conv + BN of the block input is added before ReLU
epilogue  separable conv k=29 dilation 2 -> 128, BN, ReLU; 1x1 conv -> 128, BN, ReLU
          (the dilated depthwise converts to one DEPTHWISE_CONV_2D with a dilation factor because
          kws_zoo.export fixes batch 1; with a dynamic batch the converter leaves SPACE_TO_BATCH_ND /
          BATCH_TO_SPACE_ND around it, which TFLM (dev20261023) computed wrongly in int8)
head      average over time, dense -> classes

Sizes follow NVIDIA NeMo's matchboxnet_3x1x64 config (64 MFCC, 25 ms / 10 ms; NeMo crops/pads to 128
frames, our 1 s clips give 98). With 64 bins the paper's 77k parameters are the trainable ones for
the 30 GSC-v1 words; at 12 classes it is 74.9k. The ternary variants (arXiv 2103.17142) replace the
1x1 half of the separable convs by a constant sparse random {-1, 0, +1} matrix: `_ternary` those of the
B blocks (ternary_scope 'blocks'), `_ternary_deep` every one, prologue and epilogue too ('all'); the
residual 1x1 convs, the final 1x1 conv and the classifier stay trained. Measured on the synthetic 12-label
task (docs/results.md): 'all' at 3x1x64 trails the dense model by 2.1-2.3 points, 'blocks' by 0.7-1.8.
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.compat import keras
from kws_zoo.core.errors import ConfigError
from kws_zoo.layers.rep_conv import RepConv2D
from kws_zoo.layers.ternary_pointwise import TernaryPointwise, export_form  # noqa: F401 (re-export)
from kws_zoo.models.common import feature_input, pad_time
from kws_zoo.models.registry import register_model

L = keras.layers


@dataclasses.dataclass(frozen=True)
class MatchboxNetConfig:
    blocks: int = 3            # B
    repeats: int = 1           # R, sub-blocks per block
    channels: int = 64         # C
    first_kernel: int = 13     # block i (from 0) uses first_kernel + kernel_step * i
    kernel_step: int = 2
    prologue_channels: int = 128
    prologue_kernel: int = 11
    # > 1: the prologue is a plain convolution striding this many frames (a streaming step is that many frames,
    # as in microWakeWord's models), instead of the time-channel separable one
    prologue_stride: int = 1
    # The depthwise time convolutions: "none" as MatchboxNet (no BN of their own); "rep" RepCNN's multi-branch
    # RepConv2D (main (k, 1) kernel, smaller odd (j, 1) kernels and the identity, each with BN; one conv after
    # reparameterize); "plain" its uni-branch twin, conv + BN (the same inference graph as "rep").
    depthwise_branches: str = "none"
    epilogue_channels: int = 128
    epilogue_kernel: int = 29
    epilogue_dilation: int = 2
    dropout: float = 0.0       # NeMo's released configs train with 0.0
    ternary: bool = False      # constant ternary 1x1 in the separable convs
    ternary_sparsity: float = 0.5  # fraction of zeros (our default, not from the paper)
    ternary_seed: int = 0      # layer i uses seed ternary_seed * 1000 + i
    ternary_scope: str = "all"  # "all" separable convs, or the B "blocks" only (prologue/epilogue stay dense)
    default_input_shape: tuple[int, int] = (98, 64)  # 1 s of 64 MFCC at 10 ms hop, 25 ms window
    # 'valid' or 'causal' to stream (kws_zoo.models.common.TIME_PADDINGS); with 'valid' each block's residual
    # is cropped at its oldest frames to the main path's shorter length.
    time_padding: str = "same"

    def __post_init__(self):
        if min(self.blocks, self.repeats, self.channels) < 1:
            raise ConfigError("blocks, repeats and channels must be positive")
        if min(self.first_kernel, self.prologue_kernel, self.epilogue_kernel, self.epilogue_dilation,
               self.prologue_stride) < 1 \
                or self.kernel_step < 0:
            raise ConfigError("kernel sizes and dilation must be positive, kernel_step non-negative")
        if not 0.0 <= self.ternary_sparsity < 1.0:
            raise ConfigError(f"ternary_sparsity must be in [0, 1), got {self.ternary_sparsity}")
        if self.depthwise_branches not in ("none", "rep", "plain"):
            raise ConfigError(f"depthwise_branches must be 'none', 'rep' or 'plain', got {self.depthwise_branches!r}")
        if self.ternary_scope not in ("all", "blocks"):
            raise ConfigError(f"ternary_scope must be 'all' or 'blocks', got {self.ternary_scope!r}")


class _Builder:
    """Names layers and hands out distinct ternary seeds while the graph is built."""

    def __init__(self, cfg: MatchboxNetConfig):
        self.cfg = cfg
        self.ternary_count = 0

    def pointwise(self, x, filters: int, name: str, in_block: bool):
        if not self.cfg.ternary or (self.cfg.ternary_scope == "blocks" and not in_block):
            return L.Conv2D(filters, 1, use_bias=False, name=name)(x)
        seed = self.cfg.ternary_seed * 1000 + self.ternary_count
        self.ternary_count += 1
        return TernaryPointwise(filters, seed=seed, sparsity=self.cfg.ternary_sparsity, name=name)(x)

    def separable(self, x, filters: int, kernel: int, name: str, dilation: int = 1, in_block: bool = False):
        """Time-channel separable conv + BN (activation left to the caller, for the residual add)."""
        x, padding = pad_time(x, (kernel, 1), 1, (dilation, 1), self.cfg.time_padding, name)
        if self.cfg.depthwise_branches == "rep":
            x = RepConv2D(None, (kernel, 1), dilation_rate=(dilation, 1), depthwise=True, padding=padding,
                          branch_kernels=tuple((j, 1) for j in range(kernel - 2, 0, -2)), name=f"{name}dw")(x)
        else:
            x = L.DepthwiseConv2D((kernel, 1), padding=padding, dilation_rate=(dilation, 1), use_bias=False,
                                  name=f"{name}dw")(x)
            if self.cfg.depthwise_branches == "plain":
                x = L.BatchNormalization(name=f"{name}dw_bn")(x)
        x = self.pointwise(x, filters, f"{name}pw", in_block)
        return L.BatchNormalization(name=f"{name}bn")(x)

    def activate(self, x, name: str):
        x = L.ReLU(name=f"{name}relu")(x)
        return L.Dropout(self.cfg.dropout, name=f"{name}drop")(x) if self.cfg.dropout > 0 else x

    def block(self, x, index: int):
        cfg, name = self.cfg, f"b{index + 1}_"
        kernel = cfg.first_kernel + cfg.kernel_step * index
        residual = L.Conv2D(cfg.channels, 1, use_bias=False, name=f"{name}res_conv")(x)
        residual = L.BatchNormalization(name=f"{name}res_bn")(residual)
        for r in range(cfg.repeats):
            sub = f"{name}r{r + 1}_"
            x = self.separable(x, cfg.channels, kernel, sub, in_block=True)
            if r == cfg.repeats - 1:
                extra = residual.shape[1] - x.shape[1]  # > 0 only with 'valid' time padding
                if extra:
                    residual = L.Cropping2D(((extra, 0), (0, 0)), name=f"{name}res_crop")(residual)
                x = L.Add(name=f"{name}add")([x, residual])
            x = self.activate(x, sub)
        return x


def build_matchboxnet(cfg: MatchboxNetConfig, *, input_shape, num_classes, feature_stats=None) -> keras.Model:
    inputs, x = feature_input(input_shape, feature_stats)
    # [B, T, bins, 1] -> [B, T, 1, bins]: same memory order, so a free RESHAPE; bins become channels.
    x = L.Reshape((input_shape[0], 1, input_shape[1]), name="bins_to_channels")(x)
    b = _Builder(cfg)
    if cfg.prologue_stride > 1:
        x, padding = pad_time(x, (cfg.prologue_kernel, 1), cfg.prologue_stride, 1, cfg.time_padding, "prologue_")
        x = L.Conv2D(cfg.prologue_channels, (cfg.prologue_kernel, 1), strides=(cfg.prologue_stride, 1),
                     padding=padding, use_bias=False, name="prologue_conv")(x)
        x = b.activate(L.BatchNormalization(name="prologue_bn")(x), "prologue_")
    else:
        x = b.activate(b.separable(x, cfg.prologue_channels, cfg.prologue_kernel, "prologue_"), "prologue_")
    for i in range(cfg.blocks):
        x = b.block(x, i)
    x = b.separable(x, cfg.epilogue_channels, cfg.epilogue_kernel, "epilogue1_", cfg.epilogue_dilation)
    x = b.activate(x, "epilogue1_")
    x = L.Conv2D(cfg.epilogue_channels, 1, use_bias=False, name="epilogue2_conv")(x)
    x = b.activate(L.BatchNormalization(name="epilogue2_bn")(x), "epilogue2_")
    # A pool over the whole map keeps the op AVERAGE_POOL_2D (as DS-CNN does).
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    logits = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits)


def _register(name: str, cfg: MatchboxNetConfig, description: str) -> None:
    register_model(name, family="matchboxnet", builder=build_matchboxnet, config=cfg,
                   streamable=cfg.time_padding != "same", description=description)


for _b, _r in ((3, 1), (3, 2), (6, 2)):
    _name = f"matchboxnet_{_b}x{_r}x64"
    _register(_name, MatchboxNetConfig(blocks=_b, repeats=_r),
              f"MatchboxNet {_b}x{_r}x64 on 64 MFCC (time-channel separable convs)")
    _register(f"{_name}_ternary", MatchboxNetConfig(blocks=_b, repeats=_r, ternary=True, ternary_scope="blocks"),
              f"MatchboxNet {_b}x{_r}x64 with constant sparse ternary 1x1 convs in its blocks (arXiv 2103.17142)")
# Streaming twins of 3x1x64: 'valid' time convs, so the streaming graph equals the model on every window. The
# epilogue's dilation 2 (57 frames) would make the receptive field 109 frames, more than the 98-frame window;
# dilation 1 gives 81 frames (0.8 s) and 18 positions averaged.
for _ternary in (False, True):
    _register("matchboxnet_3x1x64" + ("_ternary" if _ternary else "") + "_stream",
              MatchboxNetConfig(ternary=_ternary, ternary_scope="blocks", epilogue_dilation=1, time_padding="valid"),
              "MatchboxNet 3x1x64" + (" ternary" if _ternary else "") + " for streaming: 'valid' time convs, "
              "epilogue dilation 1")
# Spends the trainable parameters the ternary 1x1s free on depth: 6x3x64 ternary has 99.6% of the
# dense 3x1x64's trainable parameters.
_register("matchboxnet_3x1x64_ternary_deep", MatchboxNetConfig(blocks=6, repeats=3, ternary=True),
          "ternary MatchboxNet 6x3x64, same trainable-parameter budget as the dense 3x1x64")
# Wake-word size: a plain prologue convolution striding 3 frames (a 30 ms step, [1, 3, 40] in, as ESPHome feeds)
# with the 40 bins as its input channels, then small time-channel separable blocks; about 1 s of receptive field.
_WAKE = MatchboxNetConfig(channels=32, first_kernel=5, prologue_channels=32, prologue_kernel=5, prologue_stride=3,
                          epilogue_channels=48, epilogue_kernel=7, time_padding="valid", default_input_shape=(98, 40))
_register("matchboxnet_wake", MatchboxNetConfig(channels=32, first_kernel=5, prologue_channels=32, prologue_kernel=5,
                                                prologue_stride=3, epilogue_channels=48, epilogue_kernel=7,
                                                time_padding="valid", default_input_shape=(98, 40)),
          "MatchboxNet for wake words: stride-3 prologue, 3 blocks of 32 channels, 30 ms steps")
# RepCNN as its paper builds it for wake words: one-dimensional (time) convolutions over the bins as channels, each
# depthwise one trained with parallel smaller kernels and the identity, re-parameterized into one for inference.
_register("repcnn_wake", dataclasses.replace(_WAKE, depthwise_branches="rep"),
          "RepCNN for wake words: matchboxnet_wake's 1-D network, multi-branch depthwise time convs")
_register("repcnn_wake_plain", dataclasses.replace(_WAKE, depthwise_branches="plain"),
          "uni-branch twin of repcnn_wake: the same inference graph, trained as conv + BN")
