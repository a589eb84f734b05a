"""GraphQL API of segments, pipelines and stages."""
