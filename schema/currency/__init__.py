"""GraphQL API of exchange rates."""
