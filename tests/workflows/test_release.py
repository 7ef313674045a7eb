"""A tiny run released, served by a local HTTP server (the mirror), downloaded, verified and used by name: the
Python API, every CLI command that takes MODEL, `kws-zoo pretrained list / info / download`, and the firmware
folder of `kws-zoo export NAME --firmware DIR`."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import tarfile
import threading

import numpy as np
import pytest

from kws_zoo import hub
from kws_zoo.core.errors import ConfigError, DownloadError, ModelError
from kws_zoo.device.firmware import read_model_data
from kws_zoo.hub import registry as hub_registry
from kws_zoo.cli import main
from kws_zoo.workflows.release import check_name, release_run

from helpers import cli_env, run_cli, tone_clip

pytestmark = pytest.mark.xdist_group("test_cli")  # shares the session's tiny run with tests/test_cli.py

NAME = "ds_cnn_small.tones_test"  # tiny_recipe_dict trains ds_cnn_small


@pytest.fixture(scope="module")
def released(tiny_run):
    root = tiny_run[0]
    registry = root / "registry.json"
    entry = release_run(str(root / "run"), NAME, out_dir=str(root / "site"), registry_path=str(registry),
                        base_url="http://127.0.0.1:9/nothing-listens-here", description="test")
    handler = functools.partial(_QuietHandler, directory=str(root / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {hub_registry.ENV_REGISTRY: str(registry), hub.ENV_CACHE: str(root / "cache"),
           hub.ENV_MIRROR: f"http://127.0.0.1:{server.server_address[1]}"}
    yield root, entry, env
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def using(released, monkeypatch):
    for key, value in released[2].items():
        monkeypatch.setenv(key, value)
    return released


def test_release_entry_is_computed_from_the_archive_and_the_card(released):
    root, entry, _ = released
    data = (root / "site" / entry.file).read_bytes()
    assert entry.size == len(data) and entry.sha256 == hashlib.sha256(data).hexdigest()
    card = json.loads((root / "run" / "export" / "model_card.json").read_text())
    assert entry.metrics["synthetic_test"] == card["accuracy"]["tflm_int8"]
    assert (entry.params, entry.macs, entry.flash_bytes) == (card["params"], card["macs"], card["flash_bytes"])
    assert entry.architecture == "ds_cnn_small" and entry.labels == tuple(card["labels"])
    with tarfile.open(root / "site" / entry.file) as tar:
        names = tar.getnames()
    assert "model.keras" in names and "export/model_int8.tflite" in names and "firmware/model_data.cc" in names
    assert not any("ckpt" in n or "tensorboard" in n for n in names)


def test_names_must_be_architecture_dot_tag():
    assert check_name("bc_resnet_1.synthetic_digits") == "bc_resnet_1"
    for bad in ("ds_cnn", "ds_cnn.Bad-Tag", "no_such_model.x"):
        with pytest.raises((ConfigError, ModelError)):
            check_name(bad)


def test_load_pretrained_downloads_once_and_equals_the_run(using):
    root, entry, env = using
    model = hub.load_pretrained(NAME, progress=False)
    archive = os.path.join(env[hub.ENV_CACHE], "pretrained", entry.file)
    assert hashlib.sha256(open(archive, "rb").read()).hexdigest() == entry.sha256
    from kws_zoo.models.saving import load_keras
    original = load_keras(str(root / "run" / "model.keras"))
    x = np.random.default_rng(0).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), original.predict(x, verbose=0))
    import kws_zoo
    again = kws_zoo.create_model(NAME, pretrained=True)  # from the warm cache
    np.testing.assert_array_equal(again.predict(x, verbose=0), original.predict(x, verbose=0))
    overrides = json.loads((root / "run" / "recipe.json").read_text())["model_overrides"]
    untrained = kws_zoo.create_model(NAME, input_shape=model.input_shape[1:], num_classes=len(entry.labels),
                                     **overrides)
    assert untrained.count_params() == original.count_params()
    with pytest.raises(ModelError, match="as released"):
        kws_zoo.create_model(NAME, pretrained=True, filters=8)
    assert not np.array_equal(untrained.predict(x, verbose=0), original.predict(x, verbose=0))


def test_tampered_cache_is_replaced_and_a_bad_mirror_is_refused(using, tmp_path, monkeypatch):
    root, entry, env = using
    hub.download(NAME, progress=False)
    archive = os.path.join(env[hub.ENV_CACHE], "pretrained", entry.file)
    with open(archive, "r+b") as f:
        f.seek(100)
        f.write(b"\0" * 8)
    hub.download(NAME, progress=False)
    assert hashlib.sha256(open(archive, "rb").read()).hexdigest() == entry.sha256
    (tmp_path / entry.file).write_bytes(b"not the model")
    monkeypatch.setenv(hub.ENV_MIRROR, tmp_path.as_uri())
    monkeypatch.setenv(hub.ENV_CACHE, str(tmp_path / "fresh_cache"))
    with pytest.raises(DownloadError, match="refused|truncated") as err:
        hub.download(NAME, progress=False, policy=hub.RetryPolicy(attempts=2, first_delay_s=0.01))
    assert "127.0.0.1:9" in str(err.value)  # the registered URL was tried after the mirror
    assert not os.path.exists(tmp_path / "fresh_cache" / "pretrained" / entry.file)


def test_cli_takes_pretrained_names(using, tmp_path, capsys):
    """One command as a real process (the entry point and its exit code); the rest through the same entry point in
    this process, which spares a TensorFlow start-up per command."""
    root, entry, env = using
    listing = run_cli("pretrained", "list", env=cli_env(**env)).stdout
    assert NAME in listing and "synthetic" in listing and "arena" in listing and "MACs" in listing

    def kws(*args) -> str:
        main([str(a) for a in args])
        return capsys.readouterr().out

    assert json.loads(kws("pretrained", "info", NAME, "--json"))["sha256"] == entry.sha256
    folder = json.loads(kws("pretrained", "download", NAME, "--json"))["path"]
    assert os.path.isfile(os.path.join(folder, "export", "model_int8.tflite"))
    wav = tmp_path / "tone.wav"
    import soundfile as sf
    sf.write(wav, tone_clip(entry.labels[0], np.random.default_rng(0)), 16000)
    assert json.loads(kws("predict", NAME, wav, "--json"))["label"] in entry.labels
    kws("export", NAME, "--firmware", tmp_path / "fw")
    tflite = open(os.path.join(folder, "export", "model_int8.tflite"), "rb").read()
    assert read_model_data(tmp_path / "fw" / "model_data.cc") == tflite
    for args, words in ((("export", NAME), "--firmware"),
                        (("pretrained", "info", "ds_cnn.nope"), "unknown pretrained model 'ds_cnn.nope'")):
        with pytest.raises(SystemExit) as exit_:
            main(list(args))
        assert exit_.value.code == 2 and words in capsys.readouterr().err
