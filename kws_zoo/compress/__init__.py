"""Compression before export: TFMOT pruning schedules, dynamic sparsity, QAT and low-bit quantization (issue 11)."""
