"""emoji_cldr: emoji images (Noto Color Emoji, Symbola) with CLDR names in 100+ languages.

Build with `python -m tasks.emoji_cldr build --out DIR`; register the seqio tasks
with tasks.emoji_cldr.tasks.register_emoji_cldr_tasks(DIR, vocab_path).
"""
