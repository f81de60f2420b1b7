"""What a prepared dataset holds: examples and hours per split and per label, and what was skipped.

`launch/prepare.py` prints `format_summary(summarize(builder))`. Hours are counted from the stored
records themselves (each record's `num_samples` / storage rate, the audio left undecoded), not
from the builder's estimates, so the table says what the input pipeline will actually see.
"""

import collections

from fmacomp.datasets import base

_SPLIT_ORDER = {'train': 0, 'validation': 1, 'test': 2}


def _split_counts(source, label_names, rate):
  """{'examples', 'tracks', 'hours', 'labels': {name: {'examples', 'hours'}}} for one split."""
  labels = collections.defaultdict(lambda: {'examples': 0, 'hours': 0.0})
  tracks = set()
  total_samples = 0
  for _, record in base.iter_metadata(source):
    samples = int(record['num_samples'])
    total_samples += samples
    tracks.add(record['track_id'])
    entry = labels[label_names[int(record['label'])]]
    entry['examples'] += 1
    entry['hours'] += samples / rate / 3600
  return {
      'examples': len(source),
      'tracks': len(tracks),
      'hours': total_samples / rate / 3600,
      'labels': dict(sorted(labels.items())),
  }


def summarize(builder):
  """Counts a prepared builder's records.

  Args:
    builder: a prepared `base.AudioBuilder`.

  Returns:
    {'dataset', 'config', 'version', 'data_dir', 'storage_rate', 'splits': {split: {'examples',
    'tracks', 'hours', 'labels': {label: {'examples', 'hours'}}}}, 'labels': {label: {'examples',
    'hours'}} over all splits, 'skipped': [{'path', 'reason', ...}]}.
  """
  rate = int(builder.info.metadata['sample_rate'])
  label_names = builder.info.features['label'].names
  sources = {split: base.metadata_source(builder, split) for split in builder.info.splits}
  order = sorted(sources, key=lambda s: (_SPLIT_ORDER.get(s, len(_SPLIT_ORDER)), s))
  splits = {name: _split_counts(sources[name], label_names, rate) for name in order}
  labels = collections.defaultdict(lambda: {'examples': 0, 'hours': 0.0})
  for split in splits.values():
    for name, entry in split['labels'].items():
      labels[name]['examples'] += entry['examples']
      labels[name]['hours'] += entry['hours']
  return {
      **base.build_fields(builder),
      'storage_rate': rate,  # what the build stored (its metadata), not the config's intent
      'splits': splits,
      'labels': dict(sorted(labels.items())),
      'skipped': base.read_skipped(builder.data_dir),
  }


def _table(header, rows):
  """Left-aligned first column, right-aligned others, widths fitted to the content."""
  cells = [header] + rows
  widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
  lines = []
  for row in cells:
    lines.append('  '.join([row[0].ljust(widths[0])] +
                           [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip())
  return lines


def format_summary(summary):
  """The human-readable table of a `summarize` result (one string, no trailing newline)."""
  name = summary['dataset'] + (f"/{summary['config']}" if summary['config'] else '')
  lines = [f"dataset       {name} (version {summary['version']})",
           f"data_dir      {summary['data_dir']}",
           f"storage_rate  {summary['storage_rate']} Hz", '']
  splits = summary['splits']
  rows = [[s, str(v['examples']), str(v['tracks']), f"{v['hours']:.3f}"] for s, v in splits.items()]
  rows.append(['total', str(sum(v['examples'] for v in splits.values())),
               str(sum(v['tracks'] for v in splits.values())),
               f"{sum(v['hours'] for v in splits.values()):.3f}"])
  lines += _table(['split', 'examples', 'tracks', 'hours'], rows) + ['']
  # Label x split: examples in each split, then examples and hours over all splits.
  rows = []
  for label, total in summary['labels'].items():
    per_split = [str(v['labels'].get(label, {'examples': 0})['examples']) for v in splits.values()]
    rows.append([label] + per_split + [str(total['examples']), f"{total['hours']:.3f}"])
  lines += _table(['label'] + list(splits) + ['examples', 'hours'], rows) + ['']
  skipped = summary['skipped']
  lines.append(f'skipped       {len(skipped)} file(s)')
  lines += [f"  {s['path']}: {s['reason']}" for s in skipped]
  return '\n'.join(lines)
