"""GraphQL API of webhooks: endpoints, their deliveries, redelivery (webhooks:write)."""
