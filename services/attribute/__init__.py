"""The attribute role: category, color and embedding of garments, over gRPC."""
