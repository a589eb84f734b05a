"""Pure pipeline forecasting: Markov transition model, projection, planning and backtests."""
