"""GraphQL API of companies and contacts."""
