"""Tenant lifecycle and isolation: tenants, users, teams, API keys, credentials -> principal."""
