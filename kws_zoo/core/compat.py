"""The one place that decides which Keras the whole package uses.

TFMOT (pruning, QAT) only understands Keras 2 models, so kws_zoo builds every model with the
legacy `tf_keras` package. TF_USE_LEGACY_KERAS must be set before TensorFlow is first imported,
which is why every kws_zoo module imports `tf` and `keras` from here and never directly.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep oneDNN/CUDA banners out of CLI output



def _import_quietly():
    """TensorFlow's C++ start-up banners (oneDNN, CUDA probing) go straight to fd 2; hide them so CLI
    output stays readable. Python exceptions still propagate. KWS_ZOO_VERBOSE=1 shows everything."""
    if os.environ.get("KWS_ZOO_VERBOSE"):
        import tensorflow
        return tensorflow
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow
        if not os.environ.get("TF_CONFIG"):  # a cluster worker's strategy must come before the first op
            tensorflow.constant(0)  # first op: triggers the device probing that logs
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow


tf = _import_quietly()
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
