"""The device side in Python, without TensorFlow: read .tflite bytes (flatbuffer, quant), run them on the real
TFLite Micro interpreter or LiteRT (runtime, streaming, verify), write the C sources firmware compiles (c_array,
op_resolver) and count instructions under callgrind. Imports only kws_zoo.core."""
