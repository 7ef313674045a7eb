"""Judging models: accuracy reports, loading any model form (predictor, streamer), the keyword detector, long-audio
FRR / false accepts per hour, streaming drift, and the one matplotlib set-up (plots)."""
