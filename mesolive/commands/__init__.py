"""Implementations of the CLI verbs; each exposes ``run(args) -> exit code``."""
