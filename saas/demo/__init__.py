"""The demo tenant: deterministic history for a first start, from the bench's generator."""
