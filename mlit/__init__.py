"""mlit: multilingual LiT (locked-image text tuning) with T5X-compatible text towers."""

__version__ = '0.1.0'
