"""The search role: similar catalog garments for a photo or a catalog item, over gRPC."""
