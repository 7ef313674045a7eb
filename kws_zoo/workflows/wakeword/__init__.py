"""A custom wake word from text: corpus, training rounds with hard-negative mining, evaluation through the device
path, ESPHome export (kws_zoo.workflows.wakeword.run)."""
