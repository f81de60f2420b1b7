"""`synthetic_music`: procedurally rendered music in 8 styles, the embedded default dataset.

Every track is rendered by `fmacomp.datasets.synth` from a seed: nothing is downloaded. Each of
the 8 styles has a bass, a chord and a lead voice plus drums; a track draws its style's preset
(a "synthetic artist": one timbre per voice and a drum kit), key, tempo, scale, progression,
patterns, mix and loudness. Tempo ranges, scales, timbres and drum elements are shared between
styles, so the styles overlap the way genres do.

  python launch/prepare.py --dataset=synthetic_music        # default: 8 x 40 x 20 s, 44.1 kHz
  python launch/prepare.py --dataset=synthetic_music/tiny   # tests: 8 x 4 x 6 s, 16 kHz

Track k of style s is rendered from `SeedSequence([seed, s, k])`, so the same seed gives the
same bytes whatever the build order, and each style's tracks are split 70/15/15 by a
permutation drawn from the seed.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from fmacomp.datasets import base
from fmacomp.datasets import synth

T, K, P = synth.Timbre, synth.Kit, synth.Preset
SAW = tuple(1.0 / h for h in range(1, 25))
SQUARE = tuple((1.0 / h if h % 2 else 0.0) for h in range(1, 25))

# Instruments shared between styles: the overlap between genres is partly an overlap of sounds.
SUB_BASS = T((1.0, 0.3, 0.08), attack_s=0.005, decay_s=0.6, sustain=0.7, release_s=0.06)
FINGER_BASS = T((1.0, 0.6, 0.35, 0.2, 0.12, 0.06), attack_s=0.004, decay_s=0.3, sustain=0.35,
                release_s=0.05, bright_s=0.12)
UPRIGHT = T((1.0, 0.5, 0.2, 0.1, 0.05), attack_s=0.01, decay_s=0.4, sustain=0.1, release_s=0.1,
            bright_s=0.08, noise=0.03)
SYNTH_BASS = T(SAW[:16], attack_s=0.003, decay_s=0.2, sustain=0.5, release_s=0.05, bright_s=0.09)
FM_BASS = T((1.0,), attack_s=0.003, decay_s=0.15, sustain=0.4, fm_ratio=1.0, fm_index=3.0)
CELLO = T(SAW[:12], attack_s=0.12, decay_s=1.0, sustain=0.8, release_s=0.2, vibrato_cents=12,
          noise=0.02)
PIANO = T((1.0, 0.55, 0.35, 0.25, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02), attack_s=0.002,
          decay_s=0.9, sustain=0.05, release_s=0.25, bright_s=0.25)
EPIANO = T((1.0, 0.1), attack_s=0.003, decay_s=1.0, sustain=0.1, release_s=0.3, fm_ratio=1.0,
           fm_index=2.0, detune_cents=4)
ORGAN = T((1.0, 0.9, 0.6, 0.5, 0.0, 0.4, 0.0, 0.3), attack_s=0.006, decay_s=1.0, sustain=1.0,
          release_s=0.05, vibrato_cents=6)
PAD = T(SAW[:12], attack_s=0.5, decay_s=2.0, sustain=0.8, release_s=0.8, detune_cents=9)
STRINGS = T(SAW[:14], attack_s=0.2, decay_s=1.0, sustain=0.85, release_s=0.3, detune_cents=6,
            vibrato_cents=14)
NYLON = T((1.0, 0.7, 0.45, 0.3, 0.2, 0.12, 0.08, 0.05), attack_s=0.002, decay_s=0.6, sustain=0.0,
          release_s=0.15, bright_s=0.1)
STEEL = T(SAW[:20], attack_s=0.002, decay_s=0.8, sustain=0.0, release_s=0.15, bright_s=0.15,
          noise=0.02)
DRIVE = T(tuple(0.9 ** h for h in range(20)), attack_s=0.004, decay_s=1.5, sustain=0.7,
          release_s=0.1, detune_cents=12)
HARPSICHORD = T(tuple(1.0 / h ** 0.5 for h in range(1, 20)), attack_s=0.001, decay_s=0.5,
                sustain=0.0, release_s=0.1, bright_s=0.2)
PLUCK = T(SAW[:16], attack_s=0.002, decay_s=0.22, sustain=0.0, release_s=0.1, bright_s=0.05)
FLUTE = T((1.0, 0.2, 0.08, 0.03), attack_s=0.07, decay_s=1.0, sustain=0.9, release_s=0.12,
          vibrato_cents=20, noise=0.1)
CLARINET = T(SQUARE[:11], attack_s=0.04, decay_s=1.0, sustain=0.85, release_s=0.08,
             vibrato_cents=8)
VIOLIN = T(SAW[:18], attack_s=0.08, decay_s=1.0, sustain=0.85, release_s=0.15, vibrato_cents=30,
           noise=0.03)
BRASS = T(SAW[:10], attack_s=0.05, decay_s=0.4, sustain=0.7, release_s=0.1, vibrato_cents=10)
HARMONICA = T((1.0, 0.8, 0.6, 0.45, 0.3, 0.2), attack_s=0.03, decay_s=0.6, sustain=0.8,
              release_s=0.08, vibrato_cents=12, noise=0.06)
LEAD_SAW = T(SAW[:20], attack_s=0.01, decay_s=0.3, sustain=0.7, release_s=0.1, detune_cents=15,
             vibrato_cents=18)
LEAD_SQUARE = T(SQUARE[:15], attack_s=0.005, decay_s=0.3, sustain=0.6, release_s=0.08)
BELL = T((1.0,), attack_s=0.002, decay_s=0.9, sustain=0.0, release_s=0.5, fm_ratio=3.5,
         fm_index=4.0)

ROCK_KIT = K(kick_hz=55, kick_decay_s=0.2, snare_hz=200, snare_noise=0.75, hat_decay_s=0.05)
STUDIO_KIT = K(kick_hz=60, kick_decay_s=0.15, snare_hz=180, snare_noise=0.6, hat_decay_s=0.03)
ELECTRO_KIT = K(kick_hz=48, kick_sweep=4.0, kick_decay_s=0.45, snare_hz=230, snare_noise=0.85,
                hat_lo_hz=8000, hat_decay_s=0.025)
JAZZ_KIT = K(kick_hz=65, kick_decay_s=0.12, snare_hz=240, snare_noise=0.8, snare_decay_s=0.2,
             hat_decay_s=0.06, ride_hz=380)
BRUSH_KIT = K(kick_hz=70, kick_sweep=1.5, kick_decay_s=0.1, snare_noise=0.95, snare_decay_s=0.25,
              hat_lo_hz=4000, hat_decay_s=0.08)
TIMPANI_KIT = K(kick_hz=82, kick_sweep=1.1, kick_decay_s=0.7, snare_hz=300, snare_noise=0.9,
                hat_lo_hz=7000, hat_decay_s=0.3, ride_hz=1400)

BACKBEAT = dict(kick='x.....x.x.......', snare='....x.......x...', hat='x.x.x.x.x.x.x.x.')
FOUR_ON_FLOOR = dict(kick='X...X...X...X...', clap='....x.......x...', hat='??x???x???x???x?')
# Label names are sorted; STYLES must list them in that order.
STYLES = (
    synth.Style(
        'ambient', tempo=(60, 96), scales=('lydian', 'major', 'dorian', 'minor'),
        progressions=((0, 3), (0, 5), (0,), (0, 4, 5, 3)), bars_per_chord=2,
        bass=('r---------------', 'r-------r-------', 'r-------f-------'),
        chords=('x---------------', 'x-------x-------', 'a---a---a---a---'),
        lead=('x-------........', '........x-------', 'x-----x-x-------', '................'),
        drums=({}, dict(kick='x...............', hat='..?...?...?...?.'),
               dict(kick='x.......?.......', rim='....o.......o...', hat='o.o.o.o.o.o.o.o.')),
        presets=(P(SUB_BASS, PAD, BELL, ELECTRO_KIT, (0, -2, -6, -12)),
                 P(SUB_BASS, STRINGS, FLUTE, BRUSH_KIT, (0, -2, -4, -12)),
                 P(SYNTH_BASS, PAD, EPIANO, STUDIO_KIT, (-3, -1, -4, -12))),
        humanise_s=0.01),
    synth.Style(
        'classical', tempo=(60, 140), scales=('major', 'harmonic_minor', 'minor'),
        progressions=((0, 3, 4, 0), (0, 4, 0, 4), (0, 5, 3, 4), (0, 1, 4, 0)),
        bass=('r---f---r---f---', 'r-------f-------', 'r---r---r---r---'),
        chords=('a-a-a-a-a-a-a-a-', 'x---------------', 'x---x---x---x---'),
        lead=('x-----x-x-x-x---', 'x---x---x---x---', 'x-x-x-x-x-x-x-x-', 'x-------x-x-x-x-'),
        drums=({}, dict(kick='x.......x.......'),  # timpani; the "hat" is a triangle
               dict(kick='x...............', hat='x...............')),
        presets=(P(CELLO, PIANO, VIOLIN, TIMPANI_KIT, (-2, 0, -2, -10)),
                 P(CELLO, HARPSICHORD, FLUTE, TIMPANI_KIT, (-2, -2, -2, -12)),
                 P(UPRIGHT, STRINGS, CLARINET, TIMPANI_KIT, (0, -2, -1, -10))),
        centres=(43, 62, 76), humanise_s=0.01),
    synth.Style(
        'electronic', tempo=(118, 135), scales=('minor', 'phrygian', 'dorian'),
        progressions=((0,), (0, 5, 2, 6), (0, 0, 5, 6), (0, 3)),
        bass=('..o...o...o...o.', 'r.rr.rr.r.rr.rr.', 'r-.r-.r-r-.r-.r-'),
        chords=('..x...x...x...x.', 'x-------------..', 'x..x..x...x..x..'),
        lead=('xxxxxxxxxxxxxxxx', 'x.x.x.x.x.x.x.x.', 'x---..x-x---..x-', '................'),
        drums=(FOUR_ON_FLOOR,
               dict(FOUR_ON_FLOOR, open_hat='..x...x...x...x.', hat='x.x.x.x.x.x.x.x.'),
               dict(kick='X..x..X...x.....', snare='....x.......x...', hat='xxxxxxxxxxxxxxxx')),
        presets=(P(SYNTH_BASS, PAD, LEAD_SAW, ELECTRO_KIT, (0, -4, -4, 0)),
                 P(FM_BASS, PLUCK, LEAD_SQUARE, ELECTRO_KIT, (0, -3, -5, 0)),
                 P(SUB_BASS, STRINGS, BELL, STUDIO_KIT, (0, -4, -4, -1))),
        centres=(38, 60, 72), humanise_s=0.0),
    synth.Style(
        'folk', tempo=(80, 130), scales=('major', 'mixolydian', 'dorian'),
        progressions=((0, 3, 4, 0), (0, 4, 5, 3), (0, 0, 3, 0), (0, 3, 0, 4)), pentatonic=True,
        bass=('r---f---r---f---', 'r-----f-r-------', 'r---r---f---r---'),
        chords=('a.a.a.a.a.a.a.a.', 'x.x-x.x-x.x-x.x-', 'x---x---x---x---'),
        lead=('x-x-x-x-x---x---', 'x--xx-x-x-------', 'x---x-x-x---x---'),
        drums=({}, dict(kick='x.......x.......', snare='....o.......o...', hat='xoxoxoxoxoxoxoxo'),
               dict(kick='x.......x.......', hat='x.o.x.o.x.o.x.o.')),
        presets=(P(UPRIGHT, NYLON, FLUTE, BRUSH_KIT, (0, 0, -2, -8)),
                 P(FINGER_BASS, STEEL, VIOLIN, BRUSH_KIT, (0, -1, -2, -7)),
                 P(UPRIGHT, STEEL, HARMONICA, STUDIO_KIT, (0, -1, -3, -8))),
        humanise_s=0.012),
    synth.Style(
        'hiphop', tempo=(80, 100), scales=('minor', 'dorian', 'phrygian', 'harmonic_minor'),
        progressions=((0, 5), (0, 3, 4, 0), (0, 6, 5, 6), (0, 0, 5, 5)), sevenths=True, swing=0.3,
        bass=('r-------..r-.r--', 'r-----r-..r-----', 'r---------r-----'),
        chords=('x-------x-------', 'x-----x---x-----', 'x---------------'),
        lead=('x-.x-...x-.x-...', '....x-x-....x---', '................'),
        drums=(dict(kick='x......x..x.....', snare='....x.......x...', hat='x.x.x.x.x.x.x.x.'),
               dict(kick='x.....x...x..x..', clap='....x.......x...', hat='xxxxxxxxxxxxxxxx'),
               dict(kick='x..x......x.....', snare='....x.......x...', hat='x.xox.x.x.xox.x.')),
        presets=(P(SUB_BASS, PIANO, BELL, STUDIO_KIT, (0, -3, -6, 0)),
                 P(SUB_BASS, EPIANO, LEAD_SQUARE, ELECTRO_KIT, (0, -3, -6, 0)),
                 P(FINGER_BASS, STRINGS, FLUTE, ROCK_KIT, (0, -4, -5, 0))),
        centres=(36, 60, 74)),
    synth.Style(
        'jazz', tempo=(90, 180), scales=('dorian', 'mixolydian', 'major'),
        progressions=((1, 4, 0, 0), (0, 5, 1, 4), (1, 4, 0, 5), (2, 5, 1, 4)), sevenths=True,
        swing=0.6,
        bass=('r---w---w---a---', 'r---w---f---a---', 'r---f---r---w---'),
        chords=('x--.....x-......', '......x-...x----', 'x-......x--.....'),
        lead=('x-x-x---x.x-x---', 'x--x--x-x-x-x---', 'x-x-x-x-x-x-x-x-', '................'),
        drums=(dict(ride='x...x.x.x...x.x.', hat='....x.......x...', kick='?.......?.......',
                    snare='......o.......o.'),
               dict(ride='x...x.x.x...x.x.', hat='....x.......x...', snare='..o.....o.....o.')),
        presets=(P(UPRIGHT, PIANO, BRASS, JAZZ_KIT, (0, -2, -2, -6)),
                 P(UPRIGHT, EPIANO, BELL, JAZZ_KIT, (0, -2, -3, -6)),
                 P(FINGER_BASS, ORGAN, LEAD_SAW, BRUSH_KIT, (0, -4, -3, -6))),
        humanise_s=0.012),
    synth.Style(
        'reggae', tempo=(66, 96), scales=('major', 'minor', 'mixolydian'),
        progressions=((0, 3), (0, 4, 3, 4), (0, 6), (0, 3, 4, 3)), swing=0.2,
        bass=('r--.....r-f-r...', '..r-r...f---r-..', 'r-.r..f-r-.r..o-'),
        chords=('....x-......x-..', '..x...x...x...x.'),
        lead=('x-x-x---........', '........x-x-x-x-', 'x---x-x-x---....'),
        drums=(dict(kick='........x.......', rim='........x.......', hat='x.x.x.x.x.x.x.x.'),
               dict(kick='x...x...x...x...', snare='........x.......', hat='x.x.x.x.x.x.x.x.'),
               dict(kick='........x.......', snare='....o...x.......', hat='xoxoxoxoxoxoxoxo')),
        presets=(P(FINGER_BASS, ORGAN, HARMONICA, STUDIO_KIT, (0, -4, -3, -4)),
                 P(SUB_BASS, STEEL, BRASS, ROCK_KIT, (0, -4, -3, -4)),
                 P(FINGER_BASS, EPIANO, LEAD_SQUARE, STUDIO_KIT, (0, -3, -5, -4))),
        centres=(36, 62, 74)),
    synth.Style(
        'rock', tempo=(96, 150), scales=('major', 'mixolydian', 'minor', 'dorian'),
        progressions=((0, 4, 5, 3), (0, 3, 4, 3), (0, 6, 3, 0), (5, 3, 0, 4)), pentatonic=True,
        bass=('r-r-r-r-r-r-r-r-', 'r-.rr-r-r-.rr-f-', 'r---r---r---f---'),
        chords=('x-x-x-x-x-x-x-x-', 'x--x--x-x--x--x-', 'x-------x-------'),
        lead=('x-x-x---x-x-x---', 'x---x-x-x---x---', 'x-----x-x-x-x---'),
        drums=(BACKBEAT, dict(BACKBEAT, kick='x.x...x.x.x.....'),
               dict(kick='x.......x.......', snare='....x.......x...', ride='x.x.x.x.x.x.x.x.')),
        presets=(P(FINGER_BASS, DRIVE, LEAD_SAW, ROCK_KIT, (0, -1, -2, -1)),
                 P(SYNTH_BASS, STEEL, ORGAN, ROCK_KIT, (0, -2, -3, -1)),
                 P(FINGER_BASS, ORGAN, DRIVE, STUDIO_KIT, (0, -3, -1, -1))),
        centres=(40, 57, 72)),
)


DESCRIPTION = """\
SYNTHETIC music, not recordings: procedurally rendered tracks in 8 styles (ambient, classical,
electronic, folk, hiphop, jazz, reggae, rock), each with bass, chord and lead voices plus drums.
Per track a preset (the "artist": timbres and drum kit), key, tempo, scale, chord progression,
patterns, mix and loudness are drawn from the style's ranges; styles share tempi, scales,
timbres and drum elements, so they overlap the way genres do. Deterministic from the config's
seed; nothing is downloaded. Useful for tests and quick runs, not as evidence about real music.
"""


@dataclasses.dataclass
class SyntheticMusicConfig(base.AudioBuilderConfig):
  """A synthetic build.

  Attributes:
    seed: the whole dataset is a function of it (same seed, same bytes).
    tracks_per_style: tracks rendered per style, split 70/15/15 (at least 3).
    track_s: length of every track (seconds).
  """
  seed: int = 0
  tracks_per_style: int = 40
  track_s: float = 20.0


def _configs():
  configs = [SyntheticMusicConfig(name=name, description=f'8 styles x 40 tracks x 20 s at '
                                  f'{kw["storage_rate"]} Hz.', **kw)
             for name, kw in base.rate_variants('default', min_duration_s=10.0)]
  configs.append(SyntheticMusicConfig(
      name='small', description='8 styles x 40 tracks x 4 s at 16 kHz: classifier checks.',
      storage_rate=16000, tracks_per_style=40, track_s=4.0, min_duration_s=2.0))
  configs.append(SyntheticMusicConfig(
      name='tiny', description='8 styles x 4 tracks x 6 s at 16 kHz: tests.',
      storage_rate=16000, tracks_per_style=4, track_s=6.0, min_duration_s=3.0))
  return configs


def split_of(index, tracks_per_style):
  """The split of a style's track `index`: the first 70 % train, then 15 % validation, test.

  Every track is drawn independently from its own seed, so splitting by index is as random as
  splitting by a permutation, and it cannot change when the build order does.
  """
  n_held = max(1, round(0.15 * tracks_per_style))
  if tracks_per_style < 3:
    raise ValueError(f'tracks_per_style must be at least 3, got {tracks_per_style}')
  if index < tracks_per_style - 2 * n_held:
    return 'train'
  return 'validation' if index < tracks_per_style - n_held else 'test'


def compose_track(seed, style_index, index, track_s):
  """The `Song` of track `index` of style `style_index`: a function of these arguments only."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, style_index, index]))
  return synth.compose(STYLES[style_index], rng, track_s)


class SyntheticMusic(base.AudioBuilder):
  """Procedurally rendered music in 8 styles (see the module docstring)."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': 'Records carry num_samples; shards written by the builder.'}
  BUILDER_CONFIGS = _configs()
  DESCRIPTION = DESCRIPTION

  def _label_names(self):
    return [style.name for style in STYLES]

  def _split_tracks(self, dl_manager):
    config = self.builder_config
    splits = {'train': [], 'validation': [], 'test': []}
    first_artist = np.cumsum([0] + [len(style.presets) for style in STYLES])
    for s, style in enumerate(STYLES):
      for k in range(config.tracks_per_style):
        song = compose_track(config.seed, s, k, config.track_s)
        splits[split_of(k, config.tracks_per_style)].append(base.Track(
            track_id=f'{style.name}_{k:03d}', label=style.name,
            artist_id=int(first_artist[s] + song.preset), source=song,
            duration_s=config.track_s))
    return splits

  def _blocks(self, track):
    """Renders the track (composed in `_split_tracks`) at the storage rate, as one block."""
    yield synth.render(track.source, self.builder_config.storage_rate)
