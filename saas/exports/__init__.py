"""Bulk export jobs and their signed download links (docs/partners.md)."""
