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
