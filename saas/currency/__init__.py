"""Exchange rates the tenant sets, and conversion to its base currency."""
