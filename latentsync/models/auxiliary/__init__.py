"""Third-party networks that load the official `auxiliary/` weight files unchanged (training losses, evaluation
and data filters); inference never needs them."""
