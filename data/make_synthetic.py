"""Generates the built-in synthetic keyword corpus: `python data/make_synthetic.py --out DIR [--speakers N]`.

Thin entry point; the work is in `kws_zoo.datasets.synthetic` (also behind `kws-zoo make-data`).
See data/README.md for what the corpus contains and how long it takes.
"""
from __future__ import annotations

import sys
from pathlib import Path

# runnable from a source checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kws_zoo.datasets.synthetic import add_make_data_arguments, main, make_data_command  # noqa: E402

__all__ = ["add_make_data_arguments", "main", "make_data_command"]

if __name__ == "__main__":
    sys.exit(main())
