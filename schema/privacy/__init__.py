"""The personal-data API: erase and export a person's data."""
