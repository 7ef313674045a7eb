"""Firmware side of kws_zoo: run exports on TFLite Micro, measure them, and emit C++ sources.

runtime (TflmModel, LiteRtModel), verify (verify_on_tflm), c_array (write_c_array, compile_check),
op_resolver (write_op_resolver), callgrind (instructions_per_invoke). Modules are imported on
demand so `import tflm` stays cheap.
"""
