"""Shared pytest set-up for the whole suite.

Tests live in folders that mirror the package (tests/<subpackage>/test_<module>.py) and several share a basename
(tests/export/test_streaming.py, tests/device/test_streaming.py), so pytest imports them with
--import-mode=importlib (pytest.ini), which puts no test folder on sys.path. This folder goes there instead, once,
so every test module imports the shared set-up by name: `from helpers import run_cli, make_tone_corpus`.
"""
import os
import sys

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


import json  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny DS-CNN trained on a tone corpus and exported (`kws-zoo train`, `kws-zoo export`): (root, card), the
    run in root / "run". Session-scoped: the modules that use it share one xdist group ("test_cli"), so it trains
    once."""
    from helpers import make_tone_corpus, run_cli, tiny_recipe_dict

    root = tmp_path_factory.mktemp("cli")
    corpus = make_tone_corpus(root / "corpus", speakers=80)
    recipe = root / "tiny.json"
    recipe.write_text(json.dumps(tiny_recipe_dict(corpus, epochs=8)))
    run_cli("train", recipe, "--out", root / "run", "--quiet")
    card = json.loads(run_cli("export", root / "run", "--json").stdout)
    return root, card
