"""What a recipe's `compress` section says: which compression runs after training, and with which settings.

The stage order (docs/architecture.md): train the multi-branch model -> re-parameterize to the single-branch
inference form -> compress that form (prune or DSNN, then QAT) with a short fine-tune -> export. Compressing the
re-parameterized graph means every mask and every simulated quantizer acts on exactly the kernels the device
runs, and TFMOT only ever sees standard layers (plus StridedDepthwiseConv2D, which has its own entries).
Pruning and DSNN keep standalone BatchNormalization layers unfolded while they fine-tune (a mask shifts the
activations BN re-centres; folding afterwards keeps every zero); QAT quantizes the fully folded graph.
"""
from __future__ import annotations

import dataclasses

from kws_zoo.core.errors import ConfigError

METHODS = ("none", "prune", "dsnn")
SCHEDULES = ("polynomial", "constant")


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """TFMOT magnitude pruning of the inference form."""
    sparsity: float = 0.5            # final fraction of zero weights in every pruned layer
    schedule: str = "polynomial"     # polynomial: from initial_sparsity to sparsity; constant: sparsity throughout
    initial_sparsity: float = 0.0
    begin_fraction: float = 0.0      # of the compression steps, when pruning starts
    end_fraction: float = 0.6        # ... and when it reaches `sparsity` (the rest fine-tunes at it)
    frequency: int = 50              # steps between mask updates
    block_size: tuple[int, int] = (1, 1)  # (1, 1): unstructured; e.g. (1, 4): groups of 4 along the last axis
    keep_first: bool = True          # the first conv sees raw features: kept dense, as is common
    keep_last: bool = True           # the classifier: kept dense
    # Depthwise kernels stay dense by default: a small share of the weights (10-24% in the four families), each
    # weight a whole tap of one channel, and TFMOT's own registry leaves them unpruned too.
    depthwise: bool = False
    skip: tuple[str, ...] = ()       # layer names (fnmatch patterns) never pruned

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.initial_sparsity <= self.sparsity < 1.0:
            raise ConfigError(f"need 0 <= initial_sparsity <= sparsity < 1, got {self.initial_sparsity}, "
                              f"{self.sparsity}")
        if not 0.0 <= self.begin_fraction < self.end_fraction <= 1.0:
            raise ConfigError(f"need 0 <= begin_fraction < end_fraction <= 1, got {self.begin_fraction}, "
                              f"{self.end_fraction}")
        if self.frequency < 1 or min(self.block_size) < 1:
            raise ConfigError("frequency and block_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class DsnnConfig:
    """Dynamic sparsity: one set of weights, nested magnitude masks, one model per level at export."""
    levels: tuple[float, ...] = (0.0, 0.5, 0.7, 0.9)  # sparsities; 0.0 is the dense model
    levels_per_step: int = 3         # the dense, the sparsest and (levels_per_step - 2) drawn from the others
    # Of the training steps, the share over which every level's sparsity grows from 0 to its own (cubic, as
    # TFMOT's polynomial decay); masks cut suddenly at 75-90% leave too little to recover from. 0: no ramp.
    ramp_fraction: float = 0.5
    # Of the training steps, the share after which the magnitude ranking (every level's mask) stays fixed, as
    # pruning's end_fraction: each level then fine-tunes the weights it keeps. 1.0: re-ranked every epoch.
    mask_end_fraction: float = 1.0
    depthwise: bool = False          # as pruning: depthwise kernels stay dense (PruneConfig.depthwise says why)
    # Inplace distillation (as slimmable networks): every sparse level learns the dense level's predictions of the
    # same batch instead of the labels; the dense level learns the labels.
    distill: bool = False
    # Switchable BN (slimmable networks' S-BN): each level trains its own BN scale and offset instead of sharing
    # one. Free on the device: BN folds into each level's own .tflite either way.
    private_bn: bool = False

    def __post_init__(self):
        if len(self.levels) < 2 or list(self.levels) != sorted(set(self.levels)):
            raise ConfigError(f"levels must be at least two distinct increasing sparsities, got {self.levels}")
        if self.levels[0] < 0.0 or self.levels[-1] >= 1.0:
            raise ConfigError(f"levels must lie in [0, 1), got {self.levels}")
        if not 0.0 <= self.ramp_fraction <= 1.0:
            raise ConfigError(f"ramp_fraction must be in [0, 1], got {self.ramp_fraction}")
        if not self.ramp_fraction <= self.mask_end_fraction <= 1.0:
            raise ConfigError(f"mask_end_fraction must be in [ramp_fraction, 1], got {self.mask_end_fraction}")
        if not 2 <= self.levels_per_step <= len(self.levels):
            raise ConfigError(f"levels_per_step must be in 2..{len(self.levels)}, got {self.levels_per_step}")


@dataclasses.dataclass(frozen=True)
class QatConfig:
    """Quantization-aware fine-tuning (TFMOT), 8-bit or lower. Weights symmetric, per output channel."""
    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True

    def __post_init__(self):
        if not 2 <= self.weight_bits <= 8 or not 2 <= self.activation_bits <= 8:
            raise ConfigError(f"bits must be in 2..8, got weights {self.weight_bits}, "
                              f"activations {self.activation_bits}")


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    method: str = "none"             # none | prune | dsnn (QAT is independent: set `qat`)
    prune: PruneConfig = PruneConfig()
    dsnn: DsnnConfig = DsnnConfig()
    qat: QatConfig | None = None
    epochs: int = 10                 # fine-tuning epochs of the compression stage
    learning_rate: float = 5e-4      # peak of the fine-tune's cosine decay (train.fine_tune_optimizer)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "dsnn" and self.qat is not None:
            # QAT would fine-tune one level's weights and leave the others untrained for its quantizers.
            raise ConfigError("qat after dsnn is not supported: one set of QAT ranges cannot serve every level")
        if self.epochs < 1 or self.learning_rate <= 0:
            raise ConfigError(f"epochs must be >= 1 and learning_rate > 0, got {self.epochs}, "
                              f"{self.learning_rate}")

    @property
    def active(self) -> bool:
        return self.method != "none" or self.qat is not None
