"""Dataset readers (file lists only; no audio decoding, no TensorFlow) and `load_dataset`.

Decoding and the tf.data pipeline live in `kws_zoo.data.pipeline`; augmentation in `.augment`.
"""
from __future__ import annotations

from kws_zoo.data.base import DataConfig, Example, KwsData


def load_dataset(cfg: DataConfig) -> KwsData:
    """Lists the dataset `cfg` describes. cfg.skip_bad_files is for pipeline.load_waveforms."""
    if cfg.kind == "gsc":
        from kws_zoo.data.gsc import load_gsc
        return load_gsc(cfg)
    if cfg.kind == "folder":
        from kws_zoo.data.folder import load_folder
        return load_folder(cfg)
    from kws_zoo.data.fsdd import load_fsdd
    return load_fsdd(cfg)  # DataConfig validated kind, so this is "fsdd"


__all__ = ["DataConfig", "Example", "KwsData", "load_dataset"]
