"""Builds the emoji/CLDR dataset directory from the Debian-packaged sources.

DIR/
  manifest.json          config, source versions, counts (written last: its
                         presence with the same config means the build is done)
  concepts.jsonl         one emoji concept a line, row i = concept index i
  subgroups.json         subgroup names; concept 'subgroup_id' indexes it
  texts/<lang>.jsonl     emoji, index, lang, name, keywords (CLDR, per language)
  noto_aug.npy           uint8 [C*A, H, W, 3] seeded augmentations (A per concept)
  noto_aug_concept.npy   int32 [C*A] concept index of each augmentation
  noto_eval.npy          uint8 [C, H, W, 3] centred render on white
  symbola.npy            uint8 [S, H, W, 3] Symbola render (black on white)
  symbola_concept.npy    int32 [S] concept index of each Symbola render
"""

import collections
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import time

import numpy as np

from tasks import file_io
from tasks.emoji_cldr import cldr as cldr_lib
from tasks.emoji_cldr import emoji_list, render, sources
from tasks.emoji_cldr import split as split_lib

FORMAT_VERSION = 2  # 2: concepts carry 'cldr_file'
_PACKAGES = ('unicode-cldr-core', 'unicode-data', 'fonts-noto-color-emoji', 'fonts-symbola')


@dataclasses.dataclass(frozen=True)
class BuildConfig:
  image_size: int = 32
  n_aug: int = 4
  seed: int = 0
  heldout_fraction: float = 0.2
  languages: tuple[str, ...] | None = None  # None: every base locale
  include_variants: bool = False  # also regional/script locales (de_CH, zh_Hant, ...)
  max_emoji: int | None = None  # first N fully-qualified emoji (small test builds)


def _font_version(path: str) -> str:
  from fontTools.ttLib import TTFont  # pylint: disable=g-import-not-at-top

  return TTFont(path, lazy=True)['name'].getDebugName(5) or 'unknown'


def _dpkg_versions() -> dict[str, str]:
  if shutil.which('dpkg-query') is None:
    return {}
  out = {}
  for pkg in _PACKAGES:
    r = subprocess.run(
      ['dpkg-query', '-W', '-f=${Version}', pkg], capture_output=True, text=True, check=False
    )
    if r.returncode == 0 and r.stdout:
      out[pkg] = r.stdout
  return out


def source_versions(paths: dict[str, str | None]) -> dict:
  with open(paths['emoji_test'], encoding='utf-8') as f:
    head = f.read(2000)
  emoji_version = 'unknown'
  for line in head.splitlines():
    if line.startswith('# Version:'):
      emoji_version = line.split(':', 1)[1].strip()
  return {
    'cldr': cldr_lib.cldr_version(paths['ldml_dtd']),
    'emoji_test': emoji_version,
    'noto_color_emoji': _font_version(paths['noto_font']),
    'symbola': _font_version(paths['symbola_font']),
    'annotations_derived': paths['annotations_derived'] is not None,
  }


def _save_npy(path: str, arr: np.ndarray):
  with file_io.atomic_path(path) as tmp, open(tmp, 'wb') as f:
    np.save(f, arr)


def _save_jsonl(path: str, rows):
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    for r in rows:
      f.write(json.dumps(r, ensure_ascii=False) + '\n')


def _save_json(path: str, obj):
  with file_io.atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, ensure_ascii=False, indent=1, sort_keys=True)


def _config_dict(config: BuildConfig) -> dict:
  d = dataclasses.asdict(config)
  d['languages'] = list(config.languages) if config.languages is not None else None
  d['format_version'] = FORMAT_VERSION
  return d


def load_manifest(out_dir: str) -> dict | None:
  path = os.path.join(out_dir, 'manifest.json')
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: corrupt manifest ({e}); delete it to rebuild') from e


def _is_complete(out_dir: str, manifest: dict) -> bool:
  for rel, size in manifest.get('files', {}).items():
    p = os.path.join(out_dir, rel)
    if not os.path.isfile(p) or os.path.getsize(p) != size:
      return False
  return True


def build(
  out_dir: str, config: BuildConfig = BuildConfig(), root: str = '/', force: bool = False
) -> dict:
  """Builds (or reuses) the dataset in out_dir; returns the manifest."""
  paths = sources.find_all(root)
  if config.languages is not None:  # before anything is written
    cldr_lib.check_languages(paths['annotations'], config.languages)
  versions = source_versions(paths)
  cfg = _config_dict(config)
  old = load_manifest(out_dir)
  if (
    not force
    and old is not None
    and old.get('config') == cfg
    and old.get('sources') == versions
    and _is_complete(out_dir, old)
  ):
    logging.info('emoji_cldr: reusing %s (manifest matches)', out_dir)
    old['reused'] = True
    return old

  t0 = time.time()
  os.makedirs(os.path.join(out_dir, 'texts'), exist_ok=True)
  if old is not None:
    os.remove(os.path.join(out_dir, 'manifest.json'))
  skipped = collections.Counter()

  test = emoji_list.parse_emoji_test(paths['emoji_test'])
  skipped.update({f'emoji_test/{k}': v for k, v in test.skipped.items()})
  candidates = test.emoji[: config.max_emoji] if config.max_emoji else test.emoji
  ann = cldr_lib.parse_cldr(
    paths['annotations'],
    paths['annotations_derived'],
    languages=list(config.languages) if config.languages is not None else None,
    include_variants=config.include_variants,
    dtd_path=paths['ldml_dtd'],
  )
  skipped.update({f'cldr/{k}': v for k, v in ann.skipped.items()})
  t_parse = time.time() - t0

  noto = render.NotoRenderer(paths['noto_font'])
  symbola = render.SymbolaRenderer(paths['symbola_font'])
  concepts, glyphs = [], []
  for e in candidates:
    if not any(e.key in a and a[e.key].name for a in ann.languages.values()):
      skipped['emoji/no_cldr_name_in_any_language'] += 1
      continue
    g = noto.glyph(e.emoji)
    if g is None:
      skipped['emoji/noto_has_no_glyph'] += 1
      continue
    concepts.append(e)
    glyphs.append(g)
  if not concepts:
    raise ValueError('emoji_cldr: no emoji left (no CLDR names for the chosen languages?)')

  splits = split_lib.split_concepts(
    ((e.emoji, e.subgroup) for e in concepts), config.heldout_fraction, config.seed
  )
  subgroups = list(dict.fromkeys(e.subgroup for e in concepts))
  sg_id = {s: i for i, s in enumerate(subgroups)}

  size, n_aug = config.image_size, config.n_aug
  aug = np.empty((len(concepts) * n_aug, size, size, 3), np.uint8)
  evals = np.empty((len(concepts), size, size, 3), np.uint8)
  sym_imgs, sym_idx = [], []
  for i, (e, g) in enumerate(zip(concepts, glyphs)):
    evals[i] = render.place(g, size)
    aug[i * n_aug : (i + 1) * n_aug] = render.augmentations(g, size, n_aug, config.seed, i)
    sg = symbola.glyph(e.emoji)
    if sg is None:
      skipped['symbola/no_glyph'] += 1
    else:
      sym_imgs.append(render.place(sg, size))
      sym_idx.append(i)
  t_render = time.time() - t0 - t_parse

  sym_set = set(sym_idx)
  concept_rows = []
  for i, e in enumerate(concepts):
    concept_rows.append(
      {
        'index': i,
        'emoji': e.emoji,
        'codepoints': [f'{c:04X}' for c in e.codepoints],
        'group': e.group,
        'subgroup': e.subgroup,
        'subgroup_id': sg_id[e.subgroup],
        'split': splits[e.emoji],
        'english': e.english,
        'emoji_version': e.version,
        'symbola': i in sym_set,
        'cldr_file': 'annotations' if e.key in ann.base_keys else 'annotationsDerived',
      }
    )

  lang_stats, dropped_langs = {}, []
  for lang, anns in ann.languages.items():
    rows = []
    st = collections.Counter()
    for i, e in enumerate(concepts):
      a = anns.get(e.key)
      if a is None or (not a.name and not a.keywords):
        continue
      rows.append(
        {
          'emoji': e.emoji,
          'index': i,
          'lang': lang,
          'name': a.name,
          'keywords': a.keywords,
          'draft': a.draft,
        }
      )
      sp = splits[e.emoji]
      st['names'] += a.name is not None
      st['keywords'] += len(a.keywords)
      st[f'{sp}_names'] += a.name is not None
      st[f'{sp}_texts'] += (a.name is not None) + len(a.keywords)
    if not rows:
      dropped_langs.append(lang)
      continue
    _save_jsonl(os.path.join(out_dir, 'texts', f'{lang}.jsonl'), rows)
    lang_stats[lang] = {
      k: int(st[k])
      for k in (
        'names',
        'keywords',
        'tuning_names',
        'heldout_names',
        'tuning_texts',
        'heldout_texts',
      )
    }

  _save_jsonl(os.path.join(out_dir, 'concepts.jsonl'), concept_rows)
  _save_json(os.path.join(out_dir, 'subgroups.json'), subgroups)
  _save_npy(os.path.join(out_dir, 'noto_aug.npy'), aug)
  _save_npy(
    os.path.join(out_dir, 'noto_aug_concept.npy'),
    np.repeat(np.arange(len(concepts), dtype=np.int32), n_aug),
  )
  _save_npy(os.path.join(out_dir, 'noto_eval.npy'), evals)
  _save_npy(
    os.path.join(out_dir, 'symbola.npy'),
    np.stack(sym_imgs) if sym_imgs else np.zeros((0, size, size, 3), np.uint8),
  )
  _save_npy(os.path.join(out_dir, 'symbola_concept.npy'), np.asarray(sym_idx, np.int32))

  files = {}
  for rel in [
    'concepts.jsonl',
    'subgroups.json',
    'noto_aug.npy',
    'noto_aug_concept.npy',
    'noto_eval.npy',
    'symbola.npy',
    'symbola_concept.npy',
  ] + [f'texts/{l}.jsonl' for l in lang_stats]:
    files[rel] = os.path.getsize(os.path.join(out_dir, rel))
  n_held = sum(1 for r in concept_rows if r['split'] == split_lib.HELDOUT)
  manifest = {
    'config': cfg,
    'sources': versions,
    'package_versions': _dpkg_versions(),
    'counts': {
      'concepts': len(concepts),
      'tuning_concepts': len(concepts) - n_held,
      'heldout_concepts': n_held,
      'subgroups': len(subgroups),
      'heldout_concepts_in_annotations': sum(
        1
        for r in concept_rows
        if r['split'] == split_lib.HELDOUT and r['cldr_file'] == 'annotations'
      ),
      'noto_aug_images': int(aug.shape[0]),
      'symbola_images': len(sym_idx),
      'languages': len(lang_stats),
    },
    'languages': lang_stats,
    'languages_without_names': dropped_langs,
    'skipped': dict(sorted(skipped.items())),
    'seconds': {
      'parse': round(t_parse, 2),
      'render': round(t_render, 2),
      'total': round(time.time() - t0, 2),
    },
    'files': files,
  }
  _save_json(os.path.join(out_dir, 'manifest.json'), manifest)
  manifest['reused'] = False
  return manifest
