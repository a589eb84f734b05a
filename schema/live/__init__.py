"""GraphQL subscriptions for live boards and partner event feeds."""
