"""Companies and contacts: who the deals are about."""
