"""Every figure kws_zoo draws, on one set-up (`figure`): the model comparison, confusion matrices, DET curves
and the streaming drift check."""
from __future__ import annotations

import contextlib
import os

import numpy as np

from kws_zoo.core.files import atomic_path

DPI = 120


def _pyplot():
    """matplotlib.pyplot drawing into files only (no display needed). Imported on first use, not at the top:
    matplotlib takes about a second to import and only plotting needs it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def figure(path: str, figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplots):
    """(fig, axes) of a new figure (plt.subplots arguments); when the block ends it is laid out, written to
    `path` atomically (its folder made if needed) and closed, also when drawing fails."""
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, **subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path, keep_suffix=True) as tmp:  # matplotlib picks the format by the suffix
            fig.savefig(tmp, dpi=DPI)
    finally:
        plt.close(fig)


def plot_comparison(rows: list[dict], path: str) -> str:
    """TFLM int8 accuracy against MACs, one colour per model family, every point named."""
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter  # matplotlib: see _pyplot

    panels = [("accuracy_tflm_int8", "synthetic test split (unseen TTS voices)")]
    if any(r["fsdd_tflm_int8"] is not None for r in rows):
        panels.append(("fsdd_tflm_int8", "FSDD real speech (open set)"))
    families = sorted({r["family"] for r in rows})
    colours = {f: _pyplot().get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    with figure(path, (6.5 * len(panels), 5), 1, len(panels), squeeze=False) as (_, axes):
        for ax, (key, title) in zip(axes[0], panels):
            for family in families:
                pts = [r for r in rows if r["family"] == family and r[key] is not None]
                ax.scatter([r["macs"] for r in pts], [100 * r[key] for r in pts], color=colours[family],
                           label=family, s=40, zorder=3)
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
    return path


def plot_confusion(report: dict, path: str, title: str = "") -> str:
    """Confusion matrix of a classification report, rows normalised to rates, counts written in the cells."""
    cm = np.asarray(report["confusion"], np.float64)
    labels = report["labels"]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.45 * len(labels) + 2)
    with figure(path, (size, size)) as (_, ax):
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
    return path


def plot_det(rows: list[dict], path: str, title: str) -> str:
    """DET curve of a threshold sweep (kws_zoo.evaluate.long_audio): false rejects (%) against false accepts
    per hour, thresholds annotated."""
    fa = [r["fa_per_hour"] for r in rows]
    frr = [100 * r["frr"] for r in rows]
    with figure(path, (6, 4.5)) as (_, ax):
        ax.plot(fa, frr, marker="o", markersize=3)
        for r, x, y in list(zip(rows, fa, frr))[:: max(1, len(rows) // 8)]:
            ax.annotate(f"{r['threshold']:.2f}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("false accepts per hour (symlog)")
        ax.set_ylabel("false rejects (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    return path


def plot_wake_det(rows: list[dict], float_rows: list[dict] | None, chosen: dict, target: float, path: str,
                  title: str) -> str:
    """Wake-word DET curve (kws_zoo.evaluate.wake rows): FRR against FA/h with each FA/h's 95% Poisson interval,
    the float model's curve when given, the target FA/h and the cut-off chosen on validation."""
    with figure(path, (6.5, 4.8)) as (_, ax):
        hours = lambda rs: f" ({rs[0]['hours']:g} h)" if rs else ""  # noqa: E731
        for name, rs, colour in (("TFLM int8" + hours(rows), rows, "C0"),
                                 ("float Keras" + hours(float_rows), float_rows or [], "C1")):
            if not rs:
                continue
            fa = np.array([r["fa_per_hour"] for r in rs])
            lo = np.array([r["fa_per_hour_95"][0] for r in rs])
            hi = np.array([r["fa_per_hour_95"][1] for r in rs])
            frr = np.array([100 * r["frr"] for r in rs])
            ax.errorbar(fa, frr, xerr=[fa - lo, hi - fa], marker="o", markersize=3, color=colour, elinewidth=0.6,
                        capsize=2, label=name)
        picked = [r for r in rows if r["cutoff_u8"] == chosen["cutoff_u8"] and r["window"] == chosen["window"]]
        for r in picked:
            ax.plot([r["fa_per_hour"]], [100 * r["frr"]], marker="*", markersize=14, color="C3",
                    label=f"cut-off {r['cutoff']:.2f}, window {r['window']} (chosen on validation)")
        ax.axvline(target, color="grey", linestyle="--", linewidth=0.8, label=f"target {target:g} FA/h")
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlim(left=0)
        ax.set_xlabel("false accepts per hour (symlog), 95% Poisson interval")
        ax.set_ylabel("false rejects (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return path


def plot_drift(report: dict, path: str) -> str:
    """Per-minute top-1 agreement and mean |logit difference| of each streaming form (kws_zoo.evaluate.drift)."""
    with figure(path, (6.5, 5), 2, 1, sharex=True) as (_, (top, bottom)):
        for form, entry in report["forms"].items():
            m = [r["minute"] for r in entry["per_minute"]]
            top.plot(m, [100 * r["top1_agreement"] for r in entry["per_minute"]], marker="o", label=form)
            bottom.plot(m, [r["mean_abs_logit_diff"] for r in entry["per_minute"]], marker="o", label=form)
        top.set_ylabel("top-1 agreement (%)")
        top.set_ylim(min(95.0, top.get_ylim()[0]), 100.5)  # from zero-ish, so int8 noise does not look like drift
        bottom.set_ylim(0, bottom.get_ylim()[1] * 1.5)
        bottom.set_ylabel("mean |logit diff|")
        bottom.set_xlabel("minute of the stream")
        run = os.path.basename(os.path.normpath(report["run"]))
        top.set_title(f"int8 streaming vs whole-window on TFLM, {run}", fontsize=9)
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    return path
