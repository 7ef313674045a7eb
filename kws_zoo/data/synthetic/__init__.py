"""The built-in synthetic keyword corpus: TTS engines (tts), noise generators (noise), the corpus writer (corpus)."""
