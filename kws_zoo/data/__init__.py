"""Dataset readers (file lists only; no audio decoding, no TensorFlow) and `load_dataset`.

Decoding and the tf.data pipeline live in `kws_zoo.data.pipeline`; augmentation in `.augment`.
"""
from __future__ import annotations

from kws_zoo.data.base import DataConfig, Example, KwsData
from kws_zoo.data.extras import with_extras
from kws_zoo.data.folder import load_folder
from kws_zoo.data.fsdd import load_fsdd
from kws_zoo.data.gsc import load_gsc
from kws_zoo.data.pseudo import load_pseudo
from kws_zoo.data.testset import load_testset

_READERS = {"gsc": load_gsc, "folder": load_folder, "fsdd": load_fsdd, "testset": load_testset,
            "pseudo": load_pseudo}


def load_dataset(cfg: DataConfig) -> KwsData:
    """Lists the dataset `cfg` describes, with its training additions (kws_zoo.data.extras). cfg.skip_bad_files
    is for pipeline.load_waveforms."""
    return with_extras(cfg, _READERS[cfg.kind](cfg), load_dataset)  # DataConfig checked the kind


__all__ = ["DataConfig", "Example", "KwsData", "load_dataset"]
