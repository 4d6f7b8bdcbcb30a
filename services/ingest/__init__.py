"""The ingest role: accepts catalog photos and queues them, over gRPC."""
