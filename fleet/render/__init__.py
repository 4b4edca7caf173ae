"""Renderers: pure functions from a Group (and stack facts) to the documents tools read."""
