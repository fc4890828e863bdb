"""TensorFlow runs the input pipeline on the host; the accelerators belong to JAX.

TensorFlow creates every GPU it can see on its first operation and reserves most of that GPU's
memory, which JAX then cannot have; seqio and tf.data need only the CPU. So TF is shown no GPU,
as T5X and big_vision do. Listing the devices is also where TF probes CUDA: on a machine without
a GPU it logs a failed cuInit at ERROR level, which the `mlit` commands keep off the terminal by
calling this while stderr is silenced.
"""

import tensorflow as tf


def keep_tensorflow_on_host() -> None:
  """Hides GPUs from TensorFlow (idempotent; JAX still sees them)."""
  if tf.config.get_visible_devices('GPU'):
    try:
      tf.config.set_visible_devices([], 'GPU')
    except RuntimeError as e:  # TF already created its devices: too late to hide them
      tf.get_logger().warning('TensorFlow keeps its GPUs (%s); JAX may lack their memory', e)
