"""Multilingual evaluation: zero-shot classification, retrieval and language-coverage reports."""
