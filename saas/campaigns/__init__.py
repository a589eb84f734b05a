"""Campaigns: retention and follow-up sequences, sent by arq workers exactly once."""
