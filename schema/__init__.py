"""The GraphQL API (Strawberry): one sub-package per domain, composed in `schema.root`."""
