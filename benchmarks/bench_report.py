"""bench.json -> bench.md (tables for the README)."""

_MIB = float(1 << 20)


def _f(x, nd=1):
  return '-' if x is None else f'{x:,.{nd}f}'


UNRELIABLE = '**UNRELIABLE (busy machine)**'


def _spread(t: dict, scale: float) -> str:
  """pairs/s median (IQR) from a time summary; scale = pairs per step."""
  return f'{_f(scale / t["median_s"])} ({_f(scale / t["q3_s"])}-{_f(scale / t["q1_s"])})'


def _ratio(r: dict) -> str:
  return f'{r["median"]:.2f}x [{r["min"]:.2f}-{r["max"]:.2f}]'


def _flag(rec: dict) -> str:
  others = rec.get('other_cpu_cores')
  text = f'load {rec["load_before"][0]:g}->{rec["load_after"][0]:g}'
  text += f', others {others:g} cores' if others is not None else ''
  return text + (' ' + UNRELIABLE if rec['unreliable'] else '')


def _lit(result) -> list[str]:
  out = [
    '## LiT step: mlit against each peer, interleaved pairs',
    '',
    'pairs/s: median (interquartile range) over the timed repeats; speed ratio: '
    'mlit / peer, median [min-max] of the per-pair ratios; load: 1-minute load '
    'average before -> after the pair. MFU = model FLOPs / measured matmul peak.',
    '',
    '| text tower | image side | peer | mlit pairs/s | mlit MFU | peer pairs/s | peer MFU | '
    'speed ratio | load |',
    '|---|---|---|---|---|---|---|---|---|',
  ]
  heads, notes = [], []
  for text, modes in result['lit'].items():
    for mode, m in modes.items():
      b = m['mlit']['batch']
      for name, c in m['comparisons'].items():
        out.append(
          f'| {text} | {m["mlit"]["image"]} | {name} | {_spread(c["a"], b)} | '
          f'{100 * c["mlit_speed"]["mfu"]:.0f}% | {_spread(c["b"], b)} | '
          f'{100 * c["peer_speed"]["mfu"]:.0f}% | {_ratio(c["speed_ratio"])} | {_flag(c)} |'
        )
      if 'best_peer' in m:
        heads.append(
          f'- {text}, {mode} (batch {b}): mlit / strongest peer ({m["best_peer"]}) = '
          f'**{_ratio(m["headline"])}**' + (f' {UNRELIABLE}' if m['unreliable'] else '')
        )
      elif not m['comparisons']:
        s = m['mlit_speed']
        heads.append(
          f'- {text}, {mode} (batch {b}): mlit alone {_spread(s["time"], b)} pairs/s, '
          f'MFU {100 * s["mfu"]:.0f}% (no PyTorch peer timed)'
        )
      for name, why in m.get('skipped', {}).items():
        notes.append(f'- {text}, {mode}: {name} not timed: {why}')
      if 'input' in m:
        c = m['input']
        notes.append(
          f"- {text}, pre-computed: the same step fed by the trainer's input pipeline "
          f'{_spread(c["b"], b)} pairs/s against {_spread(c["a"], b)} on a fixed batch '
          f'(fixed / fed per pair {_ratio(c["speed_ratio"])}; {_flag(c)})'
        )
  return out + [''] + heads + notes + ['']


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


def _paired_mfu(rows: dict) -> list[str]:
  def spread(d, fmt):
    return f'{fmt(d["median"])} [{fmt(d["min"])}-{fmt(d["max"])}]'

  pct = lambda x: f'{100 * x:.0f}%'
  out = [
    '## MFU, each step between two peak measurements',
    '',
    "The matmul peak (warmed up, median of its products) and the LiT table's step (median of its "
    "repeats) alternate, peak first and last; each step's MFU = its model FLOP/s / the higher of "
    'the peaks right before and after it. Median [min-max] over the steps.',
    '',
    '| text tower | image side | batch | steps | step (s) | peak (GFLOP/s) | MFU | load |',
    '|---|---|---|---|---|---|---|---|',
  ]
  for text, modes in rows.items():
    for r in modes.values():
      i = r['step_info']
      out.append(
        f'| {text} | {i["image"]} | {i["batch"]} | {len(r["pairs"])} | '
        f'{spread(r["step_s"], lambda x: f"{x:.3f}")} | {spread(r["peak_gflops"], _f)} | '
        f'{spread(r["mfu"], pct)} | {_flag(r)} |'
      )
  return out + ['']


def markdown(result) -> str:
  env = result['environment']
  out = [
    '# mlit benchmarks',
    '',
    f'`{result["command"]}` ({"quick, tiny settings" if result["quick"] else "full"}), '
    f'{result["seconds"]:.0f} s. CPU: {env.get("cpu")} x{env["cpu_count"]}; '
    f'jax {env["jax"]}, torch {env.get("torch", "-")}, open_clip '
    f"{env.get('open_clip', '-')}; XLA_FLAGS='{env['xla_flags']}'; "
    f"GLIBC_TUNABLES='{env.get('glibc_tunables', '')}'. "
    f'Load average (1/5/15 min) at start {result["load_start"]}, end '
    f"{result['load_end']} (they count the benchmark's own threads); a figure taken while "
    f'other processes used more than {result["busy_limit"]:g} of the {env["cpu_count"]} cores '
    '(half) is marked unreliable.'
    + (
      ' Quick mode: tiny shapes and one repeat, a check of the set-up; its figures and ratios are '
      'not measurements.'
      if result['quick']
      else ''
    ),
    '',
  ]
  busy = [k for k, r in result['loads'].items() if r['unreliable']]
  if busy:
    out += [
      f'{UNRELIABLE}: other processes used more than half the cores during {", ".join(busy)}; '
      'those figures are not comparable with an idle run.',
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
  if 'mfu' in result:
    out += _paired_mfu(result['mfu'])
  if 'breakdown' in result:
    b = result['breakdown']
    out += [
      f'## Where the step goes ({b["text"]}, batch {b["batch"]}, pre-computed)',
      '',
      '| part | share of the step |',
      '|---|---|',
    ]
    out += [f'| {k} | {100 * v:.0f}% |' for k, v in b['share'].items()]
    out += [
      '',
      'Medians (s, min-max): '
      + ', '.join(
        f'{k} {t["median_s"]:.3f} ({t["min_s"]:.3f}-{t["max_s"]:.3f})' for k, t in b['time'].items()
      )
      + f". The step is the LiT table's step (lowered-step hash {b['step_fingerprint']}); "
      f'{_flag(b)}.',
      '',
    ]
  if 'profile' in result:
    pr = result['profile']
    m = pr['median']
    out += [
      f'## Inside the step ({pr["text"]}, batch {pr["batch"]}, pre-computed, JAX profiler)',
      '',
      '| step wall (s) | operations (products) | a product in flight (s) | only other '
      'operations (s) | no operation (s) | after the last product (s) |',
      '|---|---|---|---|---|---|',
    ]
    out += [
      f'| {s["wall_s"]:.3f} | {s["operations"]} ({s["product_operations"]}) | '
      f'{s["product_s"]:.3f} | {s["other_only_s"]:.3f} | {s["no_operation_s"]:.3f} | '
      f'{s["after_last_product_s"]:.3f} |'
      for s in pr['steps']
    ]
    out += [
      '',
      f'Median step: a matrix product in flight for {100 * m["product_s"] / m["wall_s"]:.0f}% '
      f'of it, no operation for {100 * m["no_operation_s"] / m["wall_s"]:.1f}%, '
      f'{100 * m["after_last_product_s"] / m["wall_s"]:.0f}% after the last product (the '
      'optimizer, held by the global-norm clip until the last gradient). An operation '
      'lasts until it completes (asynchronous ones past their event). '
      f"The LiT table's step (lowered-step hash {pr['step_fingerprint']}); trace in "
      f'{pr["trace_dir"]}; {_flag(pr)}.',
      '',
    ]
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
      + (
        f'(steady state {_f(d["steady_examples_per_s"])})'
        if d['steady_examples_per_s'] is not None
        else '(steady state n/a: one batch)'
      ),
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
