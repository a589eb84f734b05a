"""GraphQL API of bulk imports and exports."""
