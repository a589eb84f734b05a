"""Bulk import of companies, contacts and deals from CSV and JSON Lines (docs/partners.md)."""
