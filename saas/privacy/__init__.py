"""Personal data of contacts: erasure everywhere it is stored, and export."""
