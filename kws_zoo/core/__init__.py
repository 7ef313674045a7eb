"""Foundations every stage uses and that import nothing else of kws_zoo."""
