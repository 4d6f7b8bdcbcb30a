"""The catalog as vectors: the store interface and its backends, indexing, search and ranking."""
