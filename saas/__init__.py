"""Sales-pipeline SaaS: platform core and domain services."""
