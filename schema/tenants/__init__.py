"""GraphQL API of tenants: me, tenant, login, teams, users, API keys."""
