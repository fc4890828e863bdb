"""seqio tasks, preprocessors and the LiT feature converter (the data side of mlit)."""
