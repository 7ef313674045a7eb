"""The comparison figure: TFLM int8 accuracy against MACs, one colour per model family, every point named."""
from __future__ import annotations

import os

import numpy as np


def plot_comparison(rows: list[dict], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    panels = [("accuracy_tflm_int8", "synthetic test split (unseen TTS voices)")]
    if any(r["fsdd_tflm_int8"] is not None for r in rows):
        panels.append(("fsdd_tflm_int8", "FSDD real speech (open set)"))
    families = sorted({r["family"] for r in rows})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        for family in families:
            pts = [r for r in rows if r["family"] == family and r[key] is not None]
            ax.scatter([r["macs"] for r in pts], [100 * r[key] for r in pts], color=colours[family], label=family,
                       s=40, zorder=3)
            for r in pts:
                ax.annotate(r["name"], (r["macs"], 100 * r[key]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        ax.set_xscale("log")
        # Ticks at 1, 2, 5 x 10^k with the x-range padded to >= 4x: some tick is always labelled.
        macs = [r["macs"] for r in rows]
        ax.set_xlim(min(macs) / 2, max(macs) * 2)
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("MACs per inference (inference form, log scale)")
        ax.set_ylabel("TFLM int8 accuracy (%)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_confusion(report: dict, path: str, title: str = "") -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(report["confusion"], np.float64)
    labels = report["labels"]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 40:
        for (i, j), count in np.ndenumerate(cm):
            if count:
                ax.text(j, i, int(count), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or f"accuracy {report['accuracy']:.1%} on {report['examples']} examples")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
