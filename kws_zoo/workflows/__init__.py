"""The only library code that chains stages (besides the CLI): export a run, export its streaming forms, cost of
streaming, compare recipes. Each takes a run directory and typed options and returns a card (a dict)."""
