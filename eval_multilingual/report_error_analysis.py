"""Report blocks (report_doc) on what limits the scores per language: truncation and token-id
collisions of the evaluated texts (results.json meta 'text'), per-class errors against English
(per_class.json, error_analysis.py), and the translated-ImageNet-prompt evaluation on emoji.
Long tables are collapsed in HTML."""

from eval_multilingual import error_analysis
from eval_multilingual import report_doc as doc

TOP_K = 3  # classes shown per language and direction
EMOJI_IMAGENET_PREFIX = 'emoji_'  # keys emoji_<prompt set>_<subset>/zeroshot_classification


def _pct(v) -> str:
  return '' if v is None else f'{100 * v:.1f}'


def text_stats_blocks(results: dict) -> list:
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
      rows.append(
        [
          lang,
          m.get('n_examples', ''),
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
  return blocks


_ENTRY_HEADERS = [
  'Language',
  'English name',
  'Name',
  'Tokens en/lang',
  'Truncated',
  'Collides with',
  'Confused with',
]


def _entry_row(lang: str, e: dict) -> list:
  return [
    lang,
    e['name_en'] or '',
    e['name'] or '',
    f'{e["tokens_en"]}/{e["tokens"]}',
    'yes' if e['truncated'] else '',
    ', '.join(n or '' for n in e.get('collides_with_names', [])),
    e['confused_with_name'] or '',
  ]


def error_analysis_blocks(per_class: dict | None, top_k: int = TOP_K) -> list:
  """Per zero-shot task: per language, how many classes English gets right and the language
  wrong (and the reverse), then the top classes of each direction with names, token counts,
  truncation, collisions and the class the language confused them with."""
  if not per_class or not per_class.get('tasks'):
    return []
  blocks = [
    doc.Heading('Per-class errors against English'),
    doc.Line(
      f'Top {top_k} classes per language and direction, from {error_analysis.FILENAME} (every '
      'class in every language). Among equal gaps: collided, then truncated, then longer names.'
    ),
  ]
  for key, task in sorted(per_class['tasks'].items()):
    gaps = task.get('gaps', {})
    if not gaps:
      continue
    order = sorted(gaps, key=lambda l: (-gaps[l]['n_english_right_language_wrong'], l))
    counts = [
      [
        l,
        gaps[l]['n_classes'],
        gaps[l]['n_english_right_language_wrong'],
        gaps[l]['n_language_right_english_wrong'],
      ]
      for l in order
    ]
    worse = [
      _entry_row(l, e) for l in order for e in gaps[l]['english_right_language_wrong'][:top_k]
    ]
    better = [
      _entry_row(l, e) for l in order for e in gaps[l]['language_right_english_wrong'][:top_k]
    ]
    blocks += [
      doc.Heading(key, 3),
      doc.Table(
        ['Language', 'Classes', 'English right, language wrong', 'Language right, English wrong'],
        counts,
        1,
        collapsed=True,
      ),
      doc.Line('English right, language wrong:'),
      doc.Table(_ENTRY_HEADERS, worse, 3, collapsed=True),
      doc.Line('Language right, English wrong:'),
      doc.Table(_ENTRY_HEADERS, better, 3, collapsed=True),
    ]
  return blocks


def emoji_imagenet_blocks(results: dict) -> list:
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
    headers += [f'{name} n', f'{name} classes', f'{name} top-1 %', f'{name} top-5 %']
  rows = []
  for lang in sorted(results['languages']):
    row = [lang]
    for k in keys:
      m = results['languages'][lang].get(k)
      meta = results.get('meta', {}).get(lang, {}).get(k, {})
      row += (
        [
          meta.get('n_examples', ''),
          meta.get('n_classes', ''),
          _pct(m.get('acc1')),
          _pct(m.get('acc5')),
        ]
        if m
        else ['', '', '', '']
      )
    if any(row[1:]):
      rows.append(row)
  return [
    doc.Heading('Translated ImageNet prompts on emoji'),
    doc.Line(
      'Emoji that depict an ImageNet-1k class (eval_multilingual/data/emoji_imagenet.tsv), '
      'classified among the mapped classes the language names, from clip-benchmark ImageNet '
      'prompts. heldout: held out of tuning, and no tuned concept shares the class (the '
      'zero-shot number); tuning: the rest.'
    ),
    doc.Table(headers, rows, 1),
  ]


def blocks(run_path: str, results: dict) -> list:
  return (
    emoji_imagenet_blocks(results)
    + text_stats_blocks(results)
    + error_analysis_blocks(error_analysis.load(run_path))
  )
