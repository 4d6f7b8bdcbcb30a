"""Queue consumers: take ingest jobs from Redis Streams and index them through the core."""
