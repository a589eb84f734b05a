"""Partner webhooks: endpoints, the event log's cursor, signed deliveries (docs/partners.md)."""
