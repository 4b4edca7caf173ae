"""The offline plan: the mock engine that runs the real program, its CLI, diff and guardrails.

The only part of fleet/ that imports pulumi.
"""
