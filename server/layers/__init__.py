"""presso's model layers: linear methods registry, paged attention, rotary embeddings, norms."""
