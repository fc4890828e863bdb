"""`mlit ingest`: metadata and image shards joined into mlit's TFRecord shards (Apache Beam)."""
