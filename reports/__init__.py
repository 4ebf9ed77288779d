"""Renderers: they read only the evidence model (never a target) and write the evidence files."""
