"""kloset: garment similarity search over K-Fashion attributes, Qdrant vectors and gRPC services."""

__version__ = "0.1.0"
