"""GraphQL API of deals, stage moves, history, activities and the board."""
