"""`mlit export`: a trained run's towers in other frameworks' formats.

  mlit export --model runs/demo --format transformers --out exported/hf
  mlit export --model runs/demo --format t5x --out exported/t5x
  mlit export --model runs/my_vit_run --format big_vision --out exported/vit

transformers: the text tower as an (M)T5EncoderModel directory with its tokenizer, text head,
pooling and a model card (mlit.inference.export_transformers); t5x: the text tower as a T5X
checkpoint with the text head and the vocabulary beside it (mlit.inference.export_t5x);
big_vision: the image tower as a ViT .npz
(mlit.inference.export_big_vision), for runs whose image tower is a ViT (the demo's
EfficientNet-Lite0 is not one: that run says so and exits 2).
"""

from mlit.commands import cli

cli.run_if_main(__name__, 'export')  # `python -m`: the command, before the heavy imports

import argparse
import importlib
import os
import shutil

FORMATS = {
  'transformers': 'mlit.inference.export_transformers',
  't5x': 'mlit.inference.export_t5x',
  'big_vision': 'mlit.inference.export_big_vision',
}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    prog='mlit export', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    '--model', required=True, help='the run: MODEL_DIR, its parent, or MODEL_DIR/checkpoints/<step>'
  )
  parser.add_argument(
    '--format', required=True, choices=sorted(FORMATS), help='file format of the exported towers'
  )
  parser.add_argument('--out', required=True, help='output directory')
  args = parser.parse_args(argv)
  from mlit.inference import model as model_lib  # pylint: disable=g-import-not-at-top
  from mlit.inference import run_spec  # pylint: disable=g-import-not-at-top

  run_spec.find_model_dir(args.model)
  model = model_lib.load(args.model)
  exporter = importlib.import_module(FORMATS[args.format])
  written = _into_directory(args.out, lambda: exporter.export(model, args.out))
  print(f'wrote {written} ({args.format}, step {model.step}, fingerprint {model.fingerprint})')
  return 0


def _into_directory(out: str, write):
  """write() into out, made here if missing. If write fails, the directories made here are
  removed again, so a failed export leaves no empty or half-written directory that looks like a
  result; a directory that existed before is left as it is."""
  made, path = None, os.path.abspath(out)
  while not os.path.exists(path):  # the outermost directory makedirs will create
    made, path = path, os.path.dirname(path)
  os.makedirs(out, exist_ok=True)
  try:
    return write()
  except BaseException:
    if made:
      shutil.rmtree(made, ignore_errors=True)
    raise
