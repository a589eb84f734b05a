"""Deals, stage moves, the stage-event log, activities and custom fields."""
