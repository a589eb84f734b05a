"""GraphQL API of campaigns."""
