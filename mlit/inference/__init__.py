"""Using a trained mlit run: `load(RUN_DIR)` -> Model (encode_text, encode_image, classify)."""

from mlit.inference.model import Model, load  # noqa: F401
