"""Evaluation: the metrics lip-sync papers report (LSE-C/D, FVD, image metrics, SyncNet accuracy) and our own checks."""
