"""Files are forever: every shipped model still decodes its golden .fmac file as it did.

tests/golden/<model>/ holds a short file written once by an earlier release
(tests/golden/make_golden.py says which), the entropy-decoded symbols it held then, and the
16-bit PCM that release decoded it to. Today's release must read exactly the same symbols (the
entropy coder works on integers: any difference is a format or table change) and decode to the
same PCM within 2 LSB (float network outputs may differ by a rounding step between processors).
A model without golden files fails too, so that a newly shipped model gets them.
"""

import os

import jax
import numpy as np
import pytest
import soundfile as sf

from fmacomp.fmac import compress
from fmacomp.fmac import model_store

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
MAX_LSB = 2


@pytest.mark.parametrize('name', model_store.shipped_models())
def test_every_shipped_model_has_golden_files(name):
  for part in ('clip.fmac', 'symbols.npy', 'decoded.flac'):
    assert os.path.isfile(os.path.join(GOLDEN, name, part)), (name, part)


@pytest.mark.parametrize('name', sorted(
    n for n in os.listdir(GOLDEN) if os.path.isdir(os.path.join(GOLDEN, n))))
def test_golden_file_decodes_to_the_same_symbols_and_audio(name, tmp_path):
  folder = os.path.join(GOLDEN, name)
  path = os.path.join(folder, 'clip.fmac')
  header, _ = compress.read_header(path)
  assert header.model == name
  codec = model_store.load(name)
  np.testing.assert_array_equal(compress.read_symbols(path, codec),
                                np.load(os.path.join(folder, 'symbols.npy')))
  compress.decode_file(path, tmp_path / 'out.wav')  # the model found by the header's name
  got, rate = sf.read(tmp_path / 'out.wav', dtype='int16', always_2d=True)
  want, want_rate = sf.read(os.path.join(folder, 'decoded.flac'), dtype='int16', always_2d=True)
  assert rate == want_rate and got.shape == want.shape
  diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
  assert diff.max() <= MAX_LSB, (name, int(diff.max()), float(np.mean(diff > 0)))


def test_a_slightly_changed_model_fails_the_audio_check(tmp_path):
  # The negative control: weights scaled by 1 + 1e-3 (far less than any retraining moves them)
  # decode the same golden symbols to PCM beyond the tolerance, so the check can see a model
  # changed under its name. The symbols check cannot: the file stores them, not the weights.
  name = model_store.DEFAULT_MODEL
  folder = os.path.join(GOLDEN, name)
  codec = model_store.load(name)
  # pylint: disable-next=protected-access
  codec._variables = jax.tree.map(lambda v: v * (1 + 1e-3), codec._variables)
  compress.decode_file(os.path.join(folder, 'clip.fmac'), tmp_path / 'out.wav', codec)
  got, _ = sf.read(tmp_path / 'out.wav', dtype='int16', always_2d=True)
  want, _ = sf.read(os.path.join(folder, 'decoded.flac'), dtype='int16', always_2d=True)
  assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() > 10 * MAX_LSB
