"""Every shipped model has a MODEL_CARD.md whose facts match the files beside it.

The card's "At a glance" table is read by key (`| training steps | 1000 |`); the facts that the
folder itself holds (checkpoint step, parameters, validation records, rate target) are checked
against it, and the split file's listing in the card against the sha256 it names.
"""

import hashlib
import json
import os
import pathlib
import re

import pytest

from fmacomp.fmac import model_store
from fmacomp.training import checkpointing

CARD = 'MODEL_CARD.md'
# The team's shared folder sits beside the checkout (as in CI); no machine path is assumed.
REALMUSIC = [pathlib.Path(__file__).resolve().parents[1].parent / 'shared' / 'realmusic']


def _folder(name):
  return pathlib.Path(model_store.SHIPPED_DIR) / name


def _card(name):
  path = _folder(name) / CARD
  assert path.is_file(), f'{name} has no {CARD}'
  return path.read_text()


def _fact(card, key):
  """The value cell of `| key | value |` in the card's table (a lone code span unquoted)."""
  match = re.search(rf'^\| {re.escape(key)} \| (.+?) \|$', card, re.MULTILINE)
  assert match, f'no "{key}" row'
  code = re.fullmatch(r'`([^`]*)`', match.group(1))
  return code.group(1) if code else match.group(1)


def _listing(card):
  """The split file the card quotes (its ```json block)."""
  (block,) = re.findall(r'^```json\n(.*?)^```$', card, re.MULTILINE | re.DOTALL)
  return json.loads(block)


def _best_step(name):
  (step,) = os.listdir(_folder(name) / 'checkpoints' / checkpointing.BEST)
  return int(step)


NAMES = model_store.shipped_models()


def test_models_are_shipped():
  assert len(NAMES) >= 3  # a card test over no folders would pass on nothing


@pytest.mark.parametrize('name', NAMES)
def test_card_steps_match_the_checkpoint_and_the_validation_records(name):
  card = _card(name)
  step = _best_step(name)
  assert _fact(card, 'training steps') == str(step)
  assert _fact(card, 'name') == name
  with open(_folder(name) / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert step in [r['step'] for r in records]
  with open(_folder(name) / 'config.json') as f:
    config = json.load(f)
  points = config['model'].get('num_points')
  for r in records:  # the card's validation table is the folder's metrics.jsonl
    if points:  # a rate-conditioned model: mel distance and estimated kbps of every point
      cells = [f'{r[f"{k}_p{i}"]:.3f}' for k in ('mel_distance', 'kbps_estimated')
               for i in range(points)]
      pattern = rf'^\| {r["step"]} \| {r["loss"]:.3f} \| ' + ' \\| '.join(cells) + ' \\|$'
    else:
      pattern = rf'^\| {r["step"]} \| {r["loss"]:.3f} \| {r["distortion"]:.3f} \|'
    assert re.search(pattern, card, re.MULTILINE), r
  target = _fact(card, 'rate target (training)')
  if points:
    assert target == 'lambda ' + ' / '.join(f'{v:g}' for v in config['loss']['lmbdas']) + (
        ' per kbps, one per operating point')
  else:
    assert target.startswith(f'{config["loss"]["target_kbps"]:g} kbps')
  assert f'`{config["model"]["name"]}`' in _fact(card, 'architecture')


@pytest.mark.parametrize('name', NAMES)
def test_card_names_the_split_file_it_quotes(name):
  card = _card(name)
  sha256 = _fact(card, 'splits.json sha256')
  assert re.fullmatch(r'[0-9a-f]{64}', sha256)
  # The quoted listing, written as the splits.json of the time was, has that hash.
  text = json.dumps(_listing(card), indent=1)  # the file has a final newline since it grew
  assert sha256 in {hashlib.sha256(t.encode()).hexdigest() for t in (text, text + '\n')}
  assert '## What cannot be established' in card


@pytest.mark.parametrize('name', NAMES)
def test_card_names_the_shipped_parameters(name):
  variables, step = checkpointing.load_params(str(_folder(name)))
  assert step == _best_step(name)
  assert _fact(_folder(name).joinpath(CARD).read_text(), 'params_checksum') == (
      checkpointing.params_checksum(variables['params']))


def test_card_train_list_is_the_head_of_todays_realmusic_splits():
  folder = next((p for p in REALMUSIC if (p / 'splits.json').exists()), None)
  if folder is None:
    pytest.skip('shared realmusic folder absent (../shared/realmusic beside the checkout)')
  today = json.loads((folder / 'splits.json').read_text())
  for name in NAMES:
    listing = _listing(_card(name))
    assert listing['train'] == today['train'][:len(listing['train'])]
    assert listing['test'] == today['test']
    assert set(listing['validation']) <= set(today['validation'])
