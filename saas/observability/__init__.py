"""Structured JSON logs with request context, and Prometheus metrics."""
