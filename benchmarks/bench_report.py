"""bench.json -> bench.md (tables for the README)."""

_MIB = float(1 << 20)


def _f(x, nd=1):
  return '-' if x is None else f'{x:,.{nd}f}'


def _lit(result) -> list[str]:
  out = [
    '## LiT step (pairs/s, MFU = model FLOPs / measured matmul peak)',
    '',
    '| text tower | implementation | image side | batch | pairs/s | '
    'model GFLOP/s | MFU | s/step (min-max) |',
    '|---|---|---|---|---|---|---|---|',
  ]
  for text, row in result['lit'].items():
    for name in ('mlit_precomputed', 'mlit_live', 'open_clip_live'):
      if name not in row:
        continue
      r = row[name]
      t = r['time']
      out.append(
        f'| {text} | {name.rsplit("_", 1)[0]} | {r["image"]} | '
        f'{r["batch"]} | {_f(r["pairs_per_s"])} | '
        f'{_f(r["model_gflops_per_s"])} | {100 * r["mfu"]:.0f}% | '
        f'{t["median_s"]:.3f} ({t["min_s"]:.3f}-{t["max_s"]:.3f}) |'
      )
  out.append('')
  for text, row in result['lit'].items():
    if 'ratio_live_vs_open_clip' in row:
      out.append(
        f'- {text}: mlit live / open_clip live = '
        f'**{row["ratio_live_vs_open_clip"]:.2f}x**; mlit pre-computed / '
        f'open_clip live (open_clip has no pre-computed mode) = '
        f'**{row["ratio_precomputed_vs_open_clip_live"]:.2f}x** '
        f'(load {row["load_before"]} -> {row["load_after"]})'
      )
  return out + ['']


def precompute_lines(p) -> list[str]:
  e = p['embed']
  reads = {k: v for k, v in p['read'].items() if isinstance(v, dict)}
  return [
    '## Pre-computation',
    '',
    f'Locked ViT-{e["vit"]} @{e["image_size"]} ({e["dtype"]}, batch {e["batch"]} over '
    f'{e["devices"]} device(s)): {_f(e["images_per_s"])} images/s, MFU {_f(100 * e["mfu"], 2)}%. '
    'Shard reading (decode + resize, '
    f'{p["read"]["source_image_size"]} px JPEGs): '
    + ', '.join(f'{k} {_f(v["images_per_s"])} images/s' for k, v in reads.items())
    + f'. Bound by: {p["bound"]}.',
    '',
  ]


def markdown(result) -> str:
  env = result['environment']
  out = [
    '# mlit benchmarks',
    '',
    f'`{result["command"]}` ({"quick, tiny settings" if result["quick"] else "full"}), '
    f'{result["seconds"]:.0f} s. CPU: {env.get("cpu")} x{env["cpu_count"]}; '
    f'jax {env["jax"]}, torch {env.get("torch", "-")}, open_clip '
    f"{env.get('open_clip', '-')}; XLA_FLAGS='{env['xla_flags']}'. "
    f'Load average (1/5/15 min) at start {result["load_start"]}, end '
    f'{result["load_end"]}. Medians of repeated runs after warm-up.',
    '',
  ]
  if 'peak' in result:
    pk = result['peak']
    out += [
      '## Peak',
      '',
      f'jitted float32 {pk["jax"]["n"]}^2 matmul: '
      f'{_f(pk["jax"]["gflops"])} GFLOP/s'
      + (f', after the LiT section {_f(pk["jax_after"]["gflops"])}' if 'jax_after' in pk else '')
      + (f' (PyTorch: {_f(pk["torch"]["gflops"])})' if 'torch' in pk else '')
      + (f'; MFU base {_f(pk["mfu_base_gflops"])} GFLOP/s' if 'mfu_base_gflops' in pk else ''),
      '',
    ]
  if 'lit' in result:
    out += _lit(result)
  if 'breakdown' in result:
    b = result['breakdown']
    out += [
      f'## Where the step goes ({b["text"]}, batch {b["batch"]}, pre-computed)',
      '',
      '| part | share of the step |',
      '|---|---|',
    ]
    out += [f'| {k} | {100 * v:.0f}% |' for k, v in b['share'].items()]
    out += ['', 'Medians (s): ' + ', '.join(f'{k} {v:.3f}' for k, v in b['median_s'].items()), '']
  if 'eval' in result:
    e = result['eval']
    out += [
      '## Evaluation',
      '',
      '| text tower | prompts/s | '
      f'{e["classifier"]["n_classes"]}x{e["classifier"]["n_templates"]} '
      'classifier (estimate from prompts/s) |',
      '|---|---|---|',
    ]
    for text, r in e['prompts'].items():
      out.append(f'| {text} | {_f(r["prompts_per_s"])} | {_f(r["classifier_estimate_s"])} s |')
    c, r = e['classifier'], e['retrieval']
    out += [
      '',
      f'- classifier weights, {c["n_classes"]} classes x '
      f'{c["n_templates"]} templates, {c["text"]}: '
      f'{c["time"]["median_s"]:.2f} s (measured)',
      f'- retrieval {r["n_texts"]} x {r["n_images"]} (D={r["dim"]}), '
      f'both directions, one language: {r["time"]["median_s"]:.2f} s',
      '',
    ]
  if 'data' in result and 'examples_per_s' in result['data']:
    d = result['data']
    out += [
      '## Data',
      '',
      f'YFCC joint-signal task, TSV (.bz2) -> padded '
      f'batches: {_f(d["examples_per_s"])} examples/s '
      f'(steady state {_f(d["steady_examples_per_s"])})',
      '',
    ]
  if 'precompute' in result:
    out += precompute_lines(result['precompute'])
  if 'memory' in result:
    m = result['memory']
    out += [
      f'## Memory ({m["text"]}, batch {m["batch"]}, live ViT-{m["image"]} @{m["image_size"]})',
      '',
      '| mode | peak RSS of one step (MiB) | baseline RSS (MiB) | '
      'XLA plan (MiB) | largest batch in budget |',
      '|---|---|---|---|---|',
    ]
    for mode in ('precomputed', 'live'):
      s, lb = m['step'][mode], m['largest_batch'][mode]
      cap = ' (cap)' if lb.get('capped') else ''
      out.append(
        f'| {mode} | {_f(s["peak_rss_bytes"] / _MIB, 0)} | '
        f'{_f(s["rss_model_bytes"] / _MIB, 0)} | '
        f'{_f(s["plan"]["total"] / _MIB, 0)} | '
        f'{lb["largest_batch"]}{cap} (budget '
        f'{lb["budget_bytes"] / _MIB:.0f} MiB of XLA buffers) |'
      )
    out.append('')
  return '\n'.join(out)
