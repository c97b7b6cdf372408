"""Landmark backends, each imported only when `create_detector` asks for it."""
