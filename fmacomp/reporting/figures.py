"""The report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Every function takes plain numbers (from eval/results.json, metrics.jsonl or decoded audio) and
draws one figure; none reads files or knows about HTML.
"""

import io

import matplotlib
matplotlib.use('Agg')  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.ticker  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import scipy.signal  # pylint: disable=g-import-not-at-top,wrong-import-position

_STYLE = {'fmacomp': ('tab:red', 'o'), 'mp3': ('tab:blue', 's'), 'opus': ('tab:green', '^'),
          'resampling': ('tab:gray', 'D')}
_DPI = 90


def _plain_log(axis):
  """Log-scale ticks as plain numbers (1, 2, 5, 10, ...) instead of powers of ten."""
  axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f'{v:g}'))
  axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def png(fig):
  """Renders and closes `fig`: PNG bytes."""
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=_DPI, bbox_inches='tight')
  plt.close(fig)
  return buf.getvalue()


def rate_distortion(points, ylabel, title):
  """Metric against kbps (log axis) per family.

  Args:
    points: [(family, name, kbps, value, nominal[, (low, high)[, curve]])] where `nominal`
      marks a bitrate that is the reference's 16-bit accounting rather than a file's size
      (drawn hollow and labelled), (low, high), when given and not None, the value's 95 %
      interval (an error bar), and `curve`, when given and not None, names the network a
      point is an operating point of: an fmacomp network's points are joined by a line and
      labelled once, at the lowest bitrate ('codec@p0..p4').
    ylabel, title: axis label and title.

  Returns:
    PNG bytes, or None when no point has a value.
  """
  points = [p for p in points if p[2] and p[3] is not None]
  if not points:
    return None
  fig, ax = plt.subplots(figsize=(6, 4))
  for family in dict.fromkeys(p[0] for p in points):
    color, marker = _STYLE.get(family, ('tab:purple', 'v'))
    mine = sorted((p for p in points if p[0] == family), key=lambda p: p[2])
    if family != 'fmacomp':
      ax.plot([p[2] for p in mine], [p[3] for p in mine], '-', color=color, alpha=0.6)
    else:
      for curve in dict.fromkeys(p[6] for p in mine if len(p) > 6 and p[6] is not None):
        joined = [p for p in mine if len(p) > 6 and p[6] == curve]
        ax.plot([p[2] for p in joined], [p[3] for p in joined], '--', color=color, alpha=0.6)
    labels = {}  # a curve's points: one label at its lowest bitrate, 'codec@p0..p4'
    for curve in dict.fromkeys(p[6] for p in mine if len(p) > 6 and p[6] is not None):
      joined = [p[1] for p in mine if len(p) > 6 and p[6] == curve]
      last = joined[-1][len(curve):].lstrip('@') if joined[-1].startswith(curve) else joined[-1]
      labels.update({n: None for n in joined})
      labels[joined[0]] = joined[0] + (f'..{last}' if len(joined) > 1 else '')
    for _, name, kbps, value, nominal, *extra in mine:
      ax.scatter(kbps, value, marker=marker, s=45 if family == 'fmacomp' else 25,
                 facecolors='none' if nominal else color, edgecolors=color)
      if extra and extra[0] is not None:
        low, high = extra[0]
        ax.errorbar(kbps, value, yerr=[[value - low], [high - value]], color=color, capsize=2,
                    lw=0.8)
      text = labels.get(name, name)
      if family == 'fmacomp' and text:
        ax.annotate(text, (kbps, value), textcoords='offset points', xytext=(5, 4), fontsize=8)
    label = family + (' (nominal kbps)' if all(p[4] for p in mine) else '')
    ax.scatter([], [], marker=marker, color=color, label=label)
  ax.set_xscale('log')
  _plain_log(ax.xaxis)
  ax.set_xlabel('kbps (measured file size; hollow: nominal 16-bit accounting); bars: 95 % '
                'interval', fontsize=8)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize=8)
  return png(fig)


def training_curves(runs):
  """Loss against step, train and validation, one panel per run.

  Args:
    runs: [(name, [metrics.jsonl records])].
  """
  fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3), squeeze=False)
  for ax, (name, records) in zip(axes[0], runs):
    for split, style in (('train', '-'), ('validation', 'o-')):
      steps = [r['step'] for r in records if r['split'] == split and 'loss' in r]
      losses = [r['loss'] for r in records if r['split'] == split and 'loss' in r]
      if steps:
        ax.plot(steps, losses, style, markersize=3, label=split)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel('step')
    losses = [r['loss'] for r in records if 'loss' in r]
    if losses and min(losses) > 0 and max(losses) > 10 * min(losses):  # log only for a wide range
      ax.set_yscale('log')
      _plain_log(ax.yaxis)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  axes[0][0].set_ylabel('loss')
  return png(fig)


def confusion(matrix, label_names, title):
  """A confusion matrix (rows true, columns predicted) with its counts."""
  matrix = np.asarray(matrix)
  k = len(label_names)
  fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
  ax.imshow(matrix, cmap='Blues')
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, str(count), ha='center', va='center', fontsize=7,
            color='white' if count > matrix.max() / 2 else 'black')
  ax.set_xticks(range(k), label_names, rotation=60, ha='right', fontsize=7)
  ax.set_yticks(range(k), label_names, fontsize=7)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title, fontsize=9)
  return png(fig)


def projection(points, labels, label_names, title):
  """2-D points coloured by genre."""
  points, labels = np.asarray(points), np.asarray(labels)
  fig, ax = plt.subplots(figsize=(4.6, 4))
  cmap = plt.get_cmap('tab10' if len(label_names) <= 10 else 'tab20')
  for c, name in enumerate(label_names):
    mask = labels == c
    if mask.any():
      ax.scatter(points[mask, 0], points[mask, 1], s=10, color=cmap(c % cmap.N), label=name)
  ax.set_title(title, fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.legend(fontsize=6, markerscale=1.5, loc='best')
  return png(fig)


def spectrograms(signals, max_hz):
  """Log-magnitude spectrograms (dB) stacked vertically, on one frequency axis up to max_hz.

  Args:
    signals: [(name, float [T], rate)].
    max_hz: the top of the frequency axis (the original's Nyquist).
  """
  fig, axes = plt.subplots(len(signals), 1, figsize=(7, 1.5 * len(signals)), sharex=True,
                           squeeze=False)
  for ax, (name, x, rate) in zip(axes[:, 0], signals):
    n_fft = 1 << int(np.ceil(np.log2(rate * 0.032)))  # ~32 ms windows at every rate
    f, t, spec = scipy.signal.stft(x, fs=rate, nperseg=n_fft, noverlap=n_fft * 3 // 4)
    db = 20 * np.log10(np.maximum(np.abs(spec), 1e-6))
    ax.pcolormesh(t, f, db, vmin=-100, vmax=db.max(), shading='auto', cmap='magma')
    ax.set_facecolor('black')  # above a low-rate model's Nyquist there is nothing
    ax.set_ylim(0, max_hz)
    ax.set_ylabel('Hz', fontsize=7)
    ax.set_title(name, fontsize=8, loc='left')
    ax.tick_params(labelsize=7)
  axes[-1, 0].set_xlabel('s')
  return png(fig)


def accuracy_vs_kbps(points, references):
  """Song accuracy of classifiers reading compressed files against the files' kbps.

  Args:
    points: [(classifier, kbps, accuracy)].
    references: {classifier: accuracy on the uncompressed audio} (dashed lines).
  """
  fig, ax = plt.subplots(figsize=(6, 3.6))
  cmap = plt.get_cmap('tab10')
  for k, name in enumerate(dict.fromkeys([p[0] for p in points])):
    mine = sorted((p for p in points if p[0] == name), key=lambda p: p[1])
    ax.plot([p[1] for p in mine], [p[2] for p in mine], 'o-', color=cmap(k), label=name)
    if references.get(name) is not None:
      ax.axhline(references[name], color=cmap(k), linestyle='--', alpha=0.6,
                 label=f'{name}, uncompressed audio')
  ax.set_xscale('log')
  _plain_log(ax.xaxis)
  ax.set_xlabel('kbps (measured .fmac file size)')
  ax.set_ylabel('song accuracy')
  ax.set_ylim(0, 1.02)
  ax.grid(True, which='both', alpha=0.3)
  ax.legend(fontsize=7)
  return png(fig)
