"""Live boards: one Redis subscription per process, in-memory fan-out, gap fill from PostgreSQL."""
