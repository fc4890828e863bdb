"""mlit: multilingual LiT (locked-image text tuning) with T5X-compatible text towers."""

__version__ = '0.1.0'


def load(path, step=None, batch_size=256):
  """A trained run as a model: encode_text, encode_image, classify (mlit.inference.model)."""
  from mlit.inference import model  # imported here: `import mlit` stays light

  return model.load(path, step=step, batch_size=batch_size)
