"""GraphQL API of forecasts: request, read, backtest."""
