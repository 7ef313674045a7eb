"""Public home of `to_streaming` and its helpers (the code lives in kws_zoo.export.streaming)."""
from kws_zoo.export.streaming import StreamingSpec, run_stream, streaming_spec, to_streaming

__all__ = ["StreamingSpec", "run_stream", "streaming_spec", "to_streaming"]
