"""What `kws-zoo pretrained list` and `info` print: the registry's figures, as released."""
from __future__ import annotations

from kws_zoo.hub.registry import PretrainedEntry

# Real-speech evaluation sets, in the order the table shows them (the registry keys are extra_eval names).
REAL_SETS = (("gsc_v2_test_dev", "real GSC 12"), ("fsdd", "real FSDD"))
SHORT_FORMS = {"qat": "qat", "stream_internal": "stream", "ternary_op": "ternary-op"}


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def pretrained_table(entries: list[PretrainedEntry]) -> str:
    if not entries:
        return "no pretrained models released"
    head = ["name", "forms", "synthetic", *(title for _, title in REAL_SETS), "params", "MACs", "flash", "arena"]
    rows = [[e.name, ",".join(SHORT_FORMS[f] for f in e.forms if f in SHORT_FORMS) or "-",
             _pct(e.metrics.get("synthetic_test")), *(_pct(e.metrics.get(key)) for key, _ in REAL_SETS),
             f"{e.params:,}", f"{e.macs / 1e6:.2f}M", f"{e.flash_bytes / 1024:.1f} KB",
             f"{(e.stream_arena_bytes or e.arena_bytes) / 1024:.1f} KB"] for e in entries]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:],
                      "accuracy: TFLM int8 (whole window); synthetic = the synthetic corpus's test voices, real = "
                      "recordings of people (GSC 12-label dev set, FSDD digits); arena: TFLM's measured arena, the "
                      "streaming form's for streaming models"])


def entry_details(e: PretrainedEntry) -> str:
    rows = [("name", e.name), ("architecture", e.architecture), ("recipe", e.recipe), ("license", e.license),
            ("forms", ", ".join(e.forms)), ("labels", ", ".join(e.labels)),
            ("frontend", ", ".join(f"{k}={v}" for k, v in e.frontend.items())), ("clip", f"{e.clip_ms} ms"),
            ("params", f"{e.params:,}"), ("MACs / inference", f"{e.macs:,}"),
            ("flash (int8 .tflite)", f"{e.flash_bytes:,} bytes"),
            ("TFLM arena (measured)", f"{e.arena_bytes:,} bytes"),
            *((("TFLM arena, streaming form", f"{e.stream_arena_bytes:,} bytes"),) if e.stream_arena_bytes else ()),
            *((f"accuracy {k}", _pct(v)) for k, v in e.metrics.items()),
            ("file", f"{e.file}, {e.size:,} bytes"), ("sha256", e.sha256), ("urls", " ".join(e.urls))]
    if e.description:
        rows.insert(1, ("description", e.description))
    return "\n".join(f"{k:>30}: {v}" for k, v in rows)
