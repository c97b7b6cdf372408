"""Third-party networks that load the official `auxiliary/` weight files unchanged (evaluation and data filters)."""
