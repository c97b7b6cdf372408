"""Helpers several test modules share (server harness, ...); generic ones are in `latentsync.testing`."""
