"""The API edge: what every request meets before GraphQL runs (see docs/edge.md)."""
