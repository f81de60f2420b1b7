"""One trained `stft_codec.py:tiny` workdir per test session, shared by the stft_codec tests.

Trained in-process for the config's few steps on the session's synthetic_music/tiny build
(tests/conftest.py) through the real trainer, then its integer tables are exported, as a
user's workdir would have them. Later modules reuse the finished workdir (a DONE marker).
"""

from fmacomp.configs import stft_codec as stft_codec_config
from fmacomp.fmac import model_store
from fmacomp.training import train

DONE = 'DONE'


def workdir(tmp_path_factory, data_dir):
  """The trained workdir (a pathlib.Path)."""
  root = tmp_path_factory.getbasetemp() / 'tiny_stft_codec'
  path = root / 'workdir'
  if not (root / DONE).exists():
    config = stft_codec_config.get_config('tiny')
    config.data.data_dir = str(data_dir)
    train.train_and_evaluate(config, str(path))
    model_store.export_tables(str(path))
    (root / DONE).write_text('')
  return path
