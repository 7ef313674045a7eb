"""kws_zoo: keyword-spotting model zoo that ends on TensorFlow Lite Micro."""
__version__ = "0.1.0"
