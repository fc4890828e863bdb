"""The README's Data section: its gin file and Python snippet, as printed, register the WIT tasks
and give seqio datasets of the chosen language."""

import pathlib
import shutil

import seqio
import task_files
from spm_fixture import spm_model_path  # noqa: F401

import gin
from tasks import data_stats

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'


def _data_section_blocks() -> tuple[str, str]:
  """(the gin file, the Python snippet) printed in '## Data'."""
  section = README.read_text(encoding='utf-8').split('## Data (`tasks/`)')[1].split('\n## ')[0]
  blocks = section.split('```')[1::2]
  gin_file = next(b for b in blocks if 'register_tasks.registrations' in b)
  snippet = next(b for b in blocks if b.startswith('python'))
  return gin_file.strip('\n') + '\n', snippet.removeprefix('python\n')


def test_readme_python_snippet_registers_and_reads_the_tasks(
  tmp_path,
  monkeypatch,
  spm_model_path,  # noqa: F811
  capsys,
):
  gin_file, snippet = _data_section_blocks()
  rows = [
    task_files.wit_row(l, f'https://x/{l}{i}.jpg', reference=f'{l} {i}')
    for l in ('de', 'ja', 'en')
    for i in range(3)
  ]
  (tmp_path / 'wit').mkdir()
  task_files.write_wit(str(tmp_path / 'wit' / 'wit_v1.train.all-00000.tsv.gz'), rows)
  (tmp_path / 'runs' / 'demo').mkdir(parents=True)
  shutil.copy(spm_model_path, tmp_path / 'runs' / 'demo' / 'spm.model')
  (tmp_path / 'my_tasks.gin').write_text(gin_file, encoding='utf-8')
  monkeypatch.chdir(tmp_path)
  gin.clear_config()
  data_stats.reset()
  try:
    names = {}
    exec(snippet, names)  # noqa: S102  the README's code, as printed
    dataset = names['dataset']
    vocab = seqio.SentencePieceVocabulary(spm_model_path)
    texts = sorted(vocab.decode(e['text'].tolist()) for e in dataset.as_numpy_iterator())
  finally:
    gin.clear_config()
  printed = capsys.readouterr().out.strip()
  comment = snippet.split('print(registration.register_tasks())  # ')[1].splitlines()[0]
  assert printed == comment == "['wit_reference', 'wit_reference.de', 'wit_reference.ja']"
  assert texts == ['de 0', 'de 1', 'de 2']
