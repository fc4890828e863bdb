"""Report blocks (report_doc) on what limits the scores per language: truncation and token-id
collisions of the evaluated texts (results.json meta 'text'), per-class errors against English
(per_class.json, error_analysis.py), and the translated-ImageNet-prompt evaluation on emoji.
Long tables are collapsed in HTML."""

from typing import Callable

from eval_multilingual import error_analysis, report_data
from eval_multilingual import report_doc as doc
from tasks.user_error import UserError

TOP_K = 3  # classes shown per language and direction
EMOJI_IMAGENET_PREFIX = 'emoji_'  # keys emoji_<prompt set>_<subset>/zeroshot_classification


def _pct(v) -> str:
  return '' if v is None else f'{100 * v:.1f}'


def _n_examples(results: dict, lang: str, key: str) -> int | None:
  meta = results.get('meta', {}).get(lang, {})
  n = meta.get(key, {}).get('n_examples') if isinstance(meta.get(key), dict) else None
  return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _small(results: dict, lang: str, key: str, min_n: int) -> bool:
  n = _n_examples(results, lang, key)
  return n is not None and n < min_n


def _dagger(small: bool) -> str:
  return ' †' if small else ''


def _n_cell(results: dict, lang: str, key: str, min_n: int):
  """The language's n_examples for the task, marked † when under min_n."""
  meta = results.get('meta', {}).get(lang, {}).get(key, {})
  n = meta.get('n_examples', '') if isinstance(meta, dict) else ''
  return f'{n} †' if _small(results, lang, key, min_n) else n


def _min_n_note(min_n: int) -> doc.Line:
  return doc.Line(
    f'†: scored on fewer than {min_n} examples (--min-n); too few to compare with the rest.'
  )


def text_stats_blocks(results: dict, min_n: int = 0, label: Callable[[str], str] = str) -> list:
  """Per task and language: n, text length, truncated shares, collided classes, and top-1 raw
  (the headline: collided classes tie, ties count against) and with collided classes merged."""
  meta = results.get('meta', {})
  keys = sorted(
    {k for per in meta.values() for k, m in per.items() if isinstance(m, dict) and 'text' in m}
  )
  if not keys:
    return []
  headers = [
    'Language',
    'n',
    'Text length',
    'Names truncated %',
    'Texts truncated %',
    'Collided classes/texts',
    'Top-1 %',
    'Top-1, collided merged %',
    'Collided, e.g.',
  ]
  blocks = [
    doc.Heading('Truncation and collisions at the text length'),
    doc.Line(
      "Texts are cut at the model's text length (sticky EOS). Classes whose texts become the "
      'same token ids have identical embeddings: they tie, and ties count against the model, so '
      'the headline top-1 counts them wrong; "merged" scores each group of collided classes as '
      'one class.'
    ),
  ]
  marked = False
  for key in keys:
    rows, n_coll, n_lang_coll = [], 0, 0
    for lang in sorted(meta):
      m = meta[lang].get(key)
      if not isinstance(m, dict) or 'text' not in m:
        continue
      t = m['text']
      collided = t.get('n_classes_collided', t.get('n_texts_collided', 0))
      n_coll += collided
      n_lang_coll += collided > 0
      acc1 = results.get('languages', {}).get(lang, {}).get(key, {}).get('acc1')
      merged = m.get('collisions_merged', {}).get('acc1')
      examples = t.get('collision_examples') or [[]]
      marked |= _small(results, lang, key, min_n)
      rows.append(
        [
          label(lang),
          _n_cell(results, lang, key, min_n),
          t.get('text_length', ''),
          _pct(t.get('names_truncated_share')),
          _pct(t.get('texts_truncated_share')),
          collided,
          _pct(acc1),
          _pct(merged) if collided else '',
          ' / '.join(examples[0][:2]),
        ]
      )
    blocks += [
      doc.Heading(key, 3),
      doc.Line(f'{len(rows)} languages; {n_coll} collided classes/texts in {n_lang_coll}.'),
      doc.Table(headers, rows, 1, collapsed=True),
    ]
  return blocks + ([_min_n_note(min_n)] if marked else [])


def shared_text_blocks(results: dict, min_n: int = 0, label: Callable[[str], str] = str) -> list:
  """Per retrieval task with texts that caption several images: how many, and R@1 both ways as
  scored (the headline) and with such a text counted as each of its images' caption (meta
  shared_texts_merged, retrieval.py)."""
  meta = results.get('meta', {})
  keys = sorted(
    {
      k
      for per in meta.values()
      for k, m in per.items()
      if isinstance(m, dict) and m.get('n_texts_shared')
    }
  )
  if not keys:
    return []
  headers = [
    'Language',
    'n',
    'Texts shared',
    'T→I R@1 %',
    'T→I R@1, shared merged %',
    'I→T R@1 %',
    'I→T R@1, shared merged %',
  ]
  blocks = [
    doc.Heading('Texts that caption several images'),
    doc.Line(
      'A text that is the caption of several images (the same string) ties with itself for '
      'each of them, and ties count against the model, so image-to-text recall (I→T) counts '
      'those images wrong at R@1 whatever the model does; and its copies are the same '
      'text-to-image (T→I) query for different images, so at most one of them finds its own '
      'image first. "shared merged" counts such a text as a caption of each of its images, '
      'both ways.'
    ),
  ]
  marked = False
  for key in keys:
    rows, n_lang = [], 0
    for lang in sorted(meta):
      m = meta[lang].get(key)
      if not isinstance(m, dict) or 'n_texts_shared' not in m:
        continue
      scores = results.get('languages', {}).get(lang, {}).get(key, {})
      merged = m.get('shared_texts_merged', {})
      n_texts, shared = m.get('n_texts') or 0, m['n_texts_shared']
      n_lang += bool(shared)
      marked |= _small(results, lang, key, min_n)
      rows.append(
        [
          label(lang),
          _n_cell(results, lang, key, min_n),
          f'{shared} of {n_texts}' if n_texts else shared,
          _pct(scores.get('image_retrieval_recall@1')),
          _pct(merged.get('image_retrieval_recall@1')) if shared else '',
          _pct(scores.get('text_retrieval_recall@1')),
          _pct(merged.get('text_retrieval_recall@1')) if shared else '',
        ]
      )
    blocks += [
      doc.Heading(key, 3),
      doc.Line(f'{len(rows)} languages; texts shared by several images in {n_lang}.'),
      doc.Table(headers, rows, 1, collapsed=True),
    ]
  return blocks + ([_min_n_note(min_n)] if marked else [])


_ENTRY_HEADERS = [
  'Language',
  'English name',
  'Name',
  'Tokens en/lang',
  'Truncated',
  'Collides with',
  'Confused with',
]


def _entry_row(language: str, e: dict) -> list:
  return [
    language,
    e.get('name_en') or '',
    e.get('name') or '',
    f'{e.get("tokens_en")}/{e.get("tokens")}',
    'yes' if e.get('truncated') else '',
    ', '.join(str(n or '') for n in e.get('collides_with_names', [])),
    e.get('confused_with_name') or '',
  ]


def error_analysis_blocks(
  per_class: dict | None,
  top_k: int = TOP_K,
  results: dict | None = None,
  min_n: int = 0,
  label: Callable[[str], str] = str,
) -> list:
  """Per zero-shot task: per language, how many classes English gets right and the language
  wrong (and the reverse), then the top classes of each direction with names, token counts,
  truncation, collisions and the class the language confused them with. per_class is what
  error_analysis.load checked; languages under min_n examples in results are marked †."""
  if not per_class or not per_class.get('tasks'):
    return []
  blocks = [
    doc.Heading('Per-class errors against English'),
    doc.Line(
      f'Top {top_k} classes per language and direction, from {error_analysis.FILENAME} (every '
      'class in every language). Classes compared: the classes that both English and the '
      'language have images of. Among equal gaps: collided, then truncated, then longer names.'
    ),
  ]
  marked = False
  for key, task in sorted(per_class['tasks'].items()):
    gaps = task.get('gaps', {})
    if not gaps:
      continue
    order = sorted(gaps, key=lambda l: (-gaps[l]['n_english_right_language_wrong'], l))
    small = {l for l in order if _small(results or {}, l, key, min_n)}
    marked |= bool(small)
    names = {l: label(l) + _dagger(l in small) for l in order}
    counts = [
      [
        names[l],
        gaps[l]['n_classes'],
        gaps[l]['n_english_right_language_wrong'],
        gaps[l]['n_language_right_english_wrong'],
      ]
      for l in order
    ]
    worse = [
      _entry_row(names[l], e)
      for l in order
      for e in gaps[l].get('english_right_language_wrong', [])[:top_k]
    ]
    better = [
      _entry_row(names[l], e)
      for l in order
      for e in gaps[l].get('language_right_english_wrong', [])[:top_k]
    ]
    blocks += [
      doc.Heading(key, 3),
      doc.Table(
        [
          'Language',
          'Classes compared',
          'English right, language wrong',
          'Language right, English wrong',
        ],
        counts,
        1,
        collapsed=True,
      ),
      doc.Line('English right, language wrong:'),
      doc.Table(_ENTRY_HEADERS, worse, 3, collapsed=True),
      doc.Line('Language right, English wrong:'),
      doc.Table(_ENTRY_HEADERS, better, 3, collapsed=True),
    ]
  return blocks + ([_min_n_note(min_n)] if marked else [])


def _emoji_imagenet_cells(results: dict, lang: str, key: str, min_n: int) -> list:
  """n (†: under min_n), classes, top-1, top-5 and the top-1 95% Wilson interval."""
  m = results['languages'][lang].get(key)
  if not m:
    return ['', '', '', '', '']
  meta = results.get('meta', {}).get(lang, {}).get(key, {})
  n, acc1 = _n_examples(results, lang, key), m.get('acc1')
  ci = report_data.wilson(acc1, n) if n and acc1 is not None else None
  return [
    _n_cell(results, lang, key, min_n),
    meta.get('n_classes', ''),
    _pct(acc1),
    _pct(m.get('acc5')),
    f'{_pct(ci[0])}–{_pct(ci[1])}' if ci else '',
  ]


def emoji_imagenet_blocks(results: dict, min_n: int = 0, label: Callable[[str], str] = str) -> list:
  """Per language: the translated-ImageNet-prompt scores on emoji, held-out and tuning subsets."""
  keys = sorted(
    {
      k
      for per in results.get('languages', {}).values()
      for k in per
      if k.startswith(EMOJI_IMAGENET_PREFIX) and 'imagenet' in k
    }
  )
  if not keys:
    return []
  headers = ['Language']
  for k in keys:
    name = k.split('/')[0][len(EMOJI_IMAGENET_PREFIX) :]
    headers += [
      f'{name} n',
      f'{name} classes',
      f'{name} top-1 %',
      f'{name} top-5 %',
      f'{name} top-1 95% CI',
    ]
  rows = []
  for lang in sorted(results['languages']):
    cells = [c for k in keys for c in _emoji_imagenet_cells(results, lang, k, min_n)]
    if any(cells):
      rows.append([label(lang)] + cells)
  marked = any('†' in str(c) for row in rows for c in row)
  return [
    doc.Heading('Translated ImageNet prompts on emoji'),
    doc.Line(
      'Emoji that depict an ImageNet-1k class (eval_multilingual/data/emoji_imagenet.tsv), '
      'classified among the mapped classes the language names, from clip-benchmark ImageNet '
      'prompts. heldout: held out of tuning, and no tuned concept shares the class (the '
      'zero-shot number); tuning: the rest. n: images; classes: candidate classes (chance is '
      '1/classes for top-1, 5/classes for top-5).'
    ),
    doc.Table(headers, rows, 1),
  ] + ([_min_n_note(min_n)] if marked else [])


def blocks(
  run_path: str,
  results: dict,
  min_n: int = 0,
  warnings: list[str] | None = None,
  label: Callable[[str], str] = str,
) -> list:
  """The three sections; languages under min_n examples are marked †, `label` names a language
  code in the tables. A damaged per_class.json leaves its section out with a line in `warnings`
  (raised when no list is given)."""
  try:
    per_class = error_analysis.load(run_path)
  except UserError as e:
    if warnings is None:
      raise
    warnings.append(f'{e}; per-class errors left out')
    per_class = None
  return (
    emoji_imagenet_blocks(results, min_n, label)
    + text_stats_blocks(results, min_n, label)
    + shared_text_blocks(results, min_n, label)
    + error_analysis_blocks(per_class, TOP_K, results, min_n, label)
  )
