"""The teacher's frontend: Google's speech_embedding graphs on onnxruntime, outside TensorFlow."""
import numpy as np
import pytest

from kws_zoo.core.errors import ConfigError
from kws_zoo.data import speech_embedding
from kws_zoo.data.frontends import FrontendConfig, make_frontend
from kws_zoo.data.pipeline import features_for


def clips(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    return np.stack([0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t) * np.hanning(16000)
                     + 0.01 * rng.standard_normal(16000) for _ in range(n)]).astype(np.float32)


def test_a_one_second_clip_gives_sixteen_vectors_of_96_deterministically():
    x = clips(3)
    vectors = speech_embedding.embed(x)
    assert vectors.shape == (3, 16, 96) == (3, *FrontendConfig(kind="speech_embedding").output_shape(16000))
    assert np.all(np.isfinite(vectors))
    np.testing.assert_array_equal(vectors, speech_embedding.embed(x))
    np.testing.assert_array_equal(vectors[1], speech_embedding.embed(x[1:2])[0])  # batching does not matter
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)


def test_features_for_fills_silence_as_training_does_and_the_tf_graph_refuses_the_kind():
    cfg = FrontendConfig(kind="speech_embedding")
    silent = np.zeros((2, 16000), np.float32)
    background = np.random.default_rng(1).standard_normal((4, 32000)).astype(np.float32) * 0.1
    plain, filled = features_for(silent, cfg), features_for(silent, cfg, background=background)
    assert plain.shape == filled.shape == (2, 16, 96)
    assert not np.allclose(plain, filled, atol=1e-3)
    with pytest.raises(ConfigError, match="kws-zoo teacher"):
        make_frontend(cfg)
