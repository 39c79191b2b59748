"""The policy artifact and the numpy-only live-send runtime; see the open issues."""
