"""Segments and their pipelines: ordered stage sets per customer segment."""
