"""Getting photos in: the Redis Streams queue, content-addressed blobs, catalog submission, embedded Redis."""
