"""The embedded store on Qdrant Edge: the store itself (store), a reindex's new generation (rebuild), how garments
are laid out in a shard (layout), the shard folder and its out-of-process optimize (compaction), the calls reading
each shard (references) and the settings (tuning)."""
