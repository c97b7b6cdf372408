"""Training: the runner (data, loop, resume, DDP, logging) around the training step of `objectives`."""
