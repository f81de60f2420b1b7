"""Procedural music: timbres, drum kits, and a composer that turns a style into a track.

A track is composed first (`compose`: tempo, key, scale, chords, bass/chord/lead notes, drum
hits, mix and loudness, all drawn from one numpy Generator) into a `Song` that does not depend on
the sample rate, and rendered second (`render`: float32 mono at any rate). Both are pure
functions of their arguments, so a track's samples depend only on its seed, never on build order.

Rendering is vectorised numpy per note, with no per-sample Python loop. A pitched timbre is a
wavetable (one period of its harmonic partials, band-limited below Nyquist) read at the note's
phase and shaped by an attack/decay/sustain/release envelope, with optional decaying
brightness, a detuned copy, vibrato, FM and breath noise. Drum sounds are rendered once per kit
(pitch-swept sines, band-passed noise, inharmonic partials) and added at each hit. Repeated notes
are rendered once per track too.

Patterns are 16 steps per 4/4 bar: `.` rest, `-` holds the previous onset, `?` an onset half of
the time; any other character is an onset whose meaning the voice gives it (bass: `r` root,
`f` fifth, `o` octave, `w` walking tone, `a` approach to the next root; chords: `x` whole chord,
`a` one arpeggio tone; lead: any; drums: `X` accent, `x` normal, `o` ghost).
"""

import dataclasses
import functools
import math
import zlib
from typing import Mapping, NamedTuple

import numpy as np

VOICES = ('bass', 'chords', 'lead', 'drums')
BASS, CHORDS, LEAD, DRUMS = range(4)
SCALES = {
    'major': (0, 2, 4, 5, 7, 9, 11), 'minor': (0, 2, 3, 5, 7, 8, 10),
    'dorian': (0, 2, 3, 5, 7, 9, 10), 'mixolydian': (0, 2, 4, 5, 7, 9, 10),
    'phrygian': (0, 1, 3, 5, 7, 8, 10), 'lydian': (0, 2, 4, 6, 7, 9, 11),
    'harmonic_minor': (0, 2, 3, 5, 7, 8, 11),
}
_TABLE_BITS = 12
_TABLE = 1 << _TABLE_BITS  # wavetable length: a power of two, so phases wrap with a mask
_CONTROL = 32  # samples between the control points of envelopes and modulations
_ARPEGGIO = (0, 2, 1, 2)  # chord-tone order of `a` steps (Alberti: low, high, middle, high)


@dataclasses.dataclass(frozen=True)
class Timbre:
  """A pitched instrument.

  Attributes:
    partials: amplitudes of harmonics 1, 2, 3, ... (the wavetable's recipe).
    attack_s, decay_s, sustain, release_s: the envelope; decay is exponential toward `sustain`.
    bright_s: harmonics above the fundamental fade with this time constant (plucked and struck
      strings); 0 keeps the spectrum static.
    detune_cents: adds a copy this many cents sharp (chorus); 0 for none.
    vibrato_cents: vibrato depth at 5.5 Hz, fading in over 0.3 s.
    fm_ratio, fm_index: phase modulation by a sine at fm_ratio x f whose index decays with
      `decay_s` (electric pianos, bells); index 0 for none.
    noise: level of band-passed noise under the envelope (breath, bow, pick).
  """
  partials: tuple[float, ...]
  attack_s: float = 0.01
  decay_s: float = 0.5
  sustain: float = 0.5
  release_s: float = 0.1
  bright_s: float = 0.0
  detune_cents: float = 0.0
  vibrato_cents: float = 0.0
  fm_ratio: float = 1.0
  fm_index: float = 0.0
  noise: float = 0.0


@dataclasses.dataclass(frozen=True)
class Kit:
  """Drum sounds: a pitch-swept kick, a tone+noise snare, noise hats, a metallic ride."""
  kick_hz: float = 50.0
  kick_sweep: float = 3.0
  kick_decay_s: float = 0.25
  snare_hz: float = 190.0
  snare_noise: float = 0.7
  snare_decay_s: float = 0.12
  hat_lo_hz: float = 6000.0
  hat_decay_s: float = 0.04
  ride_hz: float = 420.0


@dataclasses.dataclass(frozen=True)
class Preset:
  """A synthetic artist: a timbre per pitched voice, a drum kit, and a mix in dB per voice."""
  bass: Timbre
  chords: Timbre
  lead: Timbre
  kit: Kit
  mix_db: tuple[float, float, float, float] = (0.0, -3.0, -2.0, -2.0)


@dataclasses.dataclass(frozen=True)
class Style:
  """A genre: the ranges a track's tempo, harmony, patterns and instruments are drawn from."""
  name: str
  tempo: tuple[float, float]
  scales: tuple[str, ...]
  progressions: tuple[tuple[int, ...], ...]  # scale degrees (0 = tonic), one chord per bar(s)
  bass: tuple[str, ...]
  chords: tuple[str, ...]
  lead: tuple[str, ...]
  drums: tuple[Mapping[str, str], ...]  # {drum sound: pattern}, one mapping drawn per track
  presets: tuple[Preset, ...]
  sevenths: bool = False
  pentatonic: bool = False  # the lead keeps to the scale's pentatonic subset
  swing: float = 0.0  # fraction of a step the off-beat eighth is delayed
  bars_per_chord: int = 1
  humanise_s: float = 0.005
  centres: tuple[int, int, int] = (40, 60, 74)  # MIDI register centres: bass, chords, lead


class Note(NamedTuple):
  voice: int
  start_s: float
  dur_s: float
  midi: int
  velocity: float


class Hit(NamedTuple):
  drum: str
  start_s: float
  velocity: float


@dataclasses.dataclass(frozen=True)
class Song:
  """A composed track, independent of the sample rate; `render` turns it into audio."""
  style: str
  preset: int
  duration_s: float
  tempo: float
  key: int
  scale: str
  notes: tuple[Note, ...]
  hits: tuple[Hit, ...]
  timbres: tuple[Timbre, Timbre, Timbre]  # bass, chords, lead
  kit: Kit
  gains: tuple[float, float, float, float]  # linear, per voice
  loudness_db: float  # RMS of the mix in dBFS
  noise_db: float  # level of the hiss floor in dBFS
  seed: int  # for the noise drawn while rendering


def midi_hz(midi):
  return 440.0 * 2.0 ** ((midi - 69) / 12)


@functools.lru_cache(maxsize=1024)
def _wavetable(partials, n_harmonics):
  """One period of the first `n_harmonics` partials, sine phase. [_TABLE] float32"""
  phase = np.arange(_TABLE) / _TABLE
  harmonics = np.arange(1, n_harmonics + 1)[:, None]
  amps = np.asarray(partials[:n_harmonics])[:, None]
  return (amps * np.sin(2 * np.pi * harmonics * phase)).sum(0).astype(np.float32)


def _phase(freq, n, rate):
  """Table positions of an oscillator at `freq`, from a wrapping 32-bit fixed-point phase.

  Integer phase stays exact however long the note; the positions are not yet wrapped to the
  table (`_read` does that), so phase offsets can be added to them. [n] int64
  """
  increment = int(round(freq / rate * 2 ** 32)) & 0xFFFFFFFF
  return (np.arange(n, dtype=np.int64) * increment & 0xFFFFFFFF) >> (32 - _TABLE_BITS)


def _read(table, positions):
  """Table lookup at integer positions, wrapped. [n] -> [n]"""
  return table[positions & (_TABLE - 1)]


def _smooth(points, n):
  """Control points (one every _CONTROL samples) linearly interpolated to n samples. [n]"""
  ramp = np.arange(_CONTROL, dtype=np.float32) / _CONTROL
  return (points[:-1, None] + (points[1:] - points[:-1])[:, None] * ramp).reshape(-1)[:n]


def _envelope(t, t_off, timbre):
  """Attack ramp, exponential decay to sustain, exponential release after `t_off`. [t]"""
  attack = max(timbre.attack_s, 1e-3)

  def held(t):
    decay = np.exp(-np.maximum(t - attack, 0.0) / timbre.decay_s)
    return (timbre.sustain + (1.0 - timbre.sustain) * decay) * np.minimum(t / attack, 1.0)

  # Five time constants over release_s: the tail ends about 43 dB down.
  release = held(np.float32(t_off)) * np.exp(-np.maximum(t - t_off, 0.0) * 5.0 / timbre.release_s)
  return np.where(t < t_off, held(t), release).astype(np.float32)


def band_noise(rng, n, rate, lo_hz, hi_hz):
  """White noise band-passed to [lo_hz, hi_hz] in the frequency domain, unit RMS. [n]"""
  n_fft = 1 << max(n - 1, 1).bit_length()  # a power of two: fast FFTs whatever n is
  spectrum = np.fft.rfft(rng.standard_normal(n_fft))
  freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
  spectrum[(freqs < lo_hz) | (freqs > min(hi_hz, 0.45 * rate))] = 0.0
  x = np.fft.irfft(spectrum, n_fft)[:n]
  return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _breath_noise(rate):
  """Band-passed noise that notes take slices of (breath, bow, pick); cached, read-only."""
  noise = band_noise(np.random.default_rng(rate), 1 << 16, rate, 600, 7000)
  noise.flags.writeable = False
  return noise


def render_note(timbre, freq, n_on, rate, noise=None):
  """One note held for `n_on` samples, plus its release tail. [n_on + release] float32

  `noise` ([m] unit-RMS noise, tiled if shorter than the note) is the timbre's breath or
  pick noise.

  Envelopes and modulations are computed at control points every _CONTROL samples and
  interpolated; the oscillators run per sample on integer phase.
  """
  n = n_on + max(1, int(timbre.release_s * rate))
  tc = np.arange(-(-n // _CONTROL) + 1, dtype=np.float32) * np.float32(_CONTROL / rate)
  positions = _phase(freq, n, rate)  # [n]
  if timbre.vibrato_cents:
    # Vibrato as phase modulation: the integral of freq * depth * sin(2 pi 5.5 t), in table units.
    depth = (2.0 ** (timbre.vibrato_cents / 1200) - 1.0) * freq / (2 * np.pi * 5.5) * _TABLE
    offset = depth * (1.0 - np.cos(2 * np.pi * 5.5 * tc)) * np.minimum(tc / 0.3, 1.0)
    positions = positions + _smooth(offset, n).astype(np.int64)
  # Harmonics (and FM sidebands, by Carson's rule) stay below 0.45 x rate: no aliasing.
  nyquist = 0.45 * rate
  if timbre.fm_index:
    index = min(timbre.fm_index, max(0.0, (nyquist - freq) / (timbre.fm_ratio * freq) - 1.0))
    mod = _read(_wavetable((1.0,), 1), _phase(freq * timbre.fm_ratio, n, rate))
    mod *= _smooth(np.exp(-tc / timbre.decay_s) * (index / (2 * np.pi) * _TABLE), n)
    positions = positions + mod.astype(np.int64)
  n_harm = max(1, min(len(timbre.partials), int(nyquist / freq)))
  full = _wavetable(timbre.partials, n_harm)
  wave = _read(full, positions)
  if timbre.bright_s:
    fundamental = _read(_wavetable(timbre.partials, 1), positions)
    wave = fundamental + (wave - fundamental) * _smooth(np.exp(-tc / timbre.bright_s), n)
  if timbre.detune_cents:
    wave = 0.5 * (wave + _read(full, _phase(freq * 2.0 ** (timbre.detune_cents / 1200), n, rate)))
  wave *= np.float32(1.0 / np.sqrt(0.5 * np.sum(np.square(timbre.partials[:n_harm]))))
  if timbre.noise and noise is not None:
    wave += np.float32(timbre.noise) * (noise[:n] if len(noise) >= n else np.resize(noise, n))
  return wave * _smooth(_envelope(tc, n_on / rate, timbre), n)


@functools.lru_cache(maxsize=64)
def drum_sounds(kit, rate):
  """Every drum sound of `kit` at `rate`: {name: float32 [samples]}.

  A pure function of its arguments (the noise is seeded from the kit), so every track that
  uses a kit gets the same samples, as with a producer's sample library. Cached: read-only.
  """
  rng = np.random.default_rng(zlib.crc32(repr(kit).encode()))

  def decaying(tau):
    """Times and an exponential decay, long enough (7 tau) to end 60 dB down. [samples]"""
    t = np.arange(int(7 * tau * rate)) / rate
    return t, np.exp(-t / tau)

  t, env = decaying(kit.kick_decay_s)
  sweep = kit.kick_hz * (1.0 + (kit.kick_sweep - 1.0) * np.exp(-t / 0.03))
  kick = np.sin(2 * np.pi * np.cumsum(sweep) / rate) * env
  kick += 0.3 * band_noise(rng, len(t), rate, 1000, 8000) * np.exp(-t / 0.003)
  t, env = decaying(kit.snare_decay_s)
  snare = ((1 - kit.snare_noise) * np.sin(2 * np.pi * kit.snare_hz * t) * np.exp(-t / 0.05)
           + kit.snare_noise * band_noise(rng, len(t), rate, 1000, 10000) * env)
  t, env = decaying(0.08)
  # A clap is three quick noise bursts, then a decay.
  bursts = sum(np.exp(-np.abs(t - d) / 0.002) for d in (0.0, 0.011, 0.023))
  clap = band_noise(rng, len(t), rate, 800, 5000) * np.maximum(bursts, env)
  t, env = decaying(kit.hat_decay_s)
  hat = 0.6 * band_noise(rng, len(t), rate, kit.hat_lo_hz, 16000) * env
  t, env = decaying(5 * kit.hat_decay_s)
  open_hat = 0.5 * band_noise(rng, len(t), rate, kit.hat_lo_hz, 16000) * env
  t, env = decaying(0.5)
  ratios = np.array([1.0, 1.47, 2.09, 2.56, 3.14, 3.83])[:, None]  # inharmonic: metallic
  ride = 0.15 * np.sin(2 * np.pi * kit.ride_hz * ratios * t).sum(0) * env
  ride += 0.25 * band_noise(rng, len(t), rate, 5000, 14000) * env ** 2
  t, env = decaying(0.015)
  rim = (np.sin(2 * np.pi * 820 * t) + 0.5 * band_noise(rng, len(t), rate, 2000, 8000)) * env
  sounds = dict(kick=kick, snare=snare, clap=clap, hat=hat, open_hat=open_hat, ride=ride, rim=rim)
  sounds = {name: s.astype(np.float32) for name, s in sounds.items()}
  for s in sounds.values():
    s.flags.writeable = False
  return sounds


def _events(pattern, rng):
  """Onsets of a 16-step pattern: [(step, length in steps, symbol)]."""
  events = []
  for step, symbol in enumerate(pattern):
    if symbol in '.-' or (symbol == '?' and rng.random() < 0.5):
      continue
    length = 1
    while step + length < len(pattern) and pattern[step + length] == '-':
      length += 1
    events.append((step, length, symbol))
  return events


def _place(pitch_class, centre):
  """The MIDI note of `pitch_class` in the octave that starts at `centre` - 6."""
  return centre - 6 + (pitch_class - centre + 6) % 12


class _Composer:
  """Draws one track of a style, bar by bar; `song()` returns it."""

  def __init__(self, style, rng, duration_s):
    self.style, self.rng, self.duration_s = style, rng, duration_s
    pick = lambda options: options[int(rng.integers(len(options)))]
    self.preset_id = int(rng.integers(len(style.presets)))
    self.tempo = float(rng.uniform(*style.tempo))
    self.key = int(rng.integers(12))
    self.scale_name = pick(style.scales)
    self.scale = SCALES[self.scale_name]
    self.progression = pick(style.progressions)
    self.patterns = dict(bass=pick(style.bass), chords=pick(style.chords),
                         lead=(pick(style.lead), pick(style.lead)), drums=pick(style.drums))
    self.step_s = 60.0 / self.tempo / 4
    self.notes, self.hits = [], []
    self.lead_degree = 0

  def _time(self, bar, step):
    """Onset time of a step: swung off-beats, humanised."""
    swing = self.style.swing * (1.0 if step % 4 == 2 else 0.5 if step % 2 else 0.0)
    jitter = self.rng.normal(0.0, self.style.humanise_s)
    return max(0.0, (bar * 16 + step + swing) * self.step_s + jitter)

  def _chord(self, bar):
    """Pitch classes of the bar's chord (root first): stacked scale thirds."""
    n = len(self.progression)
    degree = self.progression[(bar // self.style.bars_per_chord) % n]
    size = 4 if self.style.sevenths else 3
    return [(self.key + self.scale[(degree + 2 * i) % 7]) % 12 for i in range(size)]

  def _note(self, voice, bar, step, length, midi, velocity):
    dur = max(0.05, 0.92 * length * self.step_s)
    vel = velocity * self.rng.uniform(0.8, 1.0)
    self.notes.append(Note(voice, self._time(bar, step), dur, int(midi), vel))

  def bass(self, bar):
    chord, next_root = self._chord(bar), self._chord(bar + 1)[0]
    root = _place(chord[0], self.style.centres[BASS])
    for step, length, symbol in _events(self.patterns['bass'], self.rng):
      offset = {'f': 7, 'o': 12}.get(symbol, 0)
      if symbol == 'w':
        offset = (_place(chord[int(self.rng.integers(1, len(chord)))], root + 6) - root)
      elif symbol == 'a':
        offset = (next_root - chord[0]) % 12 + int(self.rng.choice([-1, 1]))
      self._note(BASS, bar, step, length, root + offset, 1.0)

  def chords(self, bar):
    voiced = sorted(_place(pc, self.style.centres[CHORDS]) for pc in self._chord(bar))
    for i, (step, length, symbol) in enumerate(_events(self.patterns['chords'], self.rng)):
      tones = [voiced[_ARPEGGIO[i % 4] % len(voiced)]] if symbol == 'a' else voiced
      for midi in tones:
        self._note(CHORDS, bar, step, length, midi, 0.8 if symbol == 'a' else 0.6)

  def lead(self, bar, pattern):
    """A random walk on the scale that lands on chord tones on the beats."""
    degrees = range(7)
    if self.style.pentatonic:
      degrees = (0, 1, 2, 4, 5) if self.scale[2] == 4 else (0, 2, 3, 4, 6)
    tonic = _place(self.key, self.style.centres[LEAD])
    chord = self._chord(bar)
    for step, length, _ in _events(pattern, self.rng):
      d = self.lead_degree + int(self.rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]))
      candidates = [c for c in range(d - 2, d + 3) if c % 7 in degrees]
      if step % 4 == 0:  # on the beat: prefer chord tones
        on_chord = [c for c in candidates
                    if (self.key + self.scale[c % 7]) % 12 in chord]
        candidates = on_chord or candidates
      d = min(candidates, key=lambda c: (abs(c - d), c))
      self.lead_degree = int(np.clip(d, -4, 10))
      midi = tonic + self.scale[self.lead_degree % 7] + 12 * (self.lead_degree // 7)
      self._note(LEAD, bar, step, length, midi, 0.9)

  def drums(self, bar):
    fill = bar % 4 == 3 and self.rng.random() < 0.3
    for drum, pattern in self.patterns['drums'].items():
      if fill and drum == 'snare':
        pattern = pattern[:12] + 'xoxx'
      for step, _, symbol in _events(pattern, self.rng):
        velocity = {'X': 1.0, 'o': 0.4}.get(symbol, 0.75) * self.rng.uniform(0.85, 1.0)
        self.hits.append(Hit(drum, self._time(bar, step), velocity))

  def song(self):
    """Composes every bar in sections of 4; a section may leave out a voice (arrangement)."""
    n_bars = math.ceil(self.duration_s / (16 * self.step_s))
    rng = self.rng
    for section in range(0, n_bars, 4):
      active = rng.random(4) < (0.92, 0.92, 0.75, 0.85)
      phrase = [self.patterns['lead'][int(rng.integers(2))] for _ in range(2)]
      for bar in range(section, min(section + 4, n_bars)):
        if active[BASS]:
          self.bass(bar)
        if active[CHORDS]:
          self.chords(bar)
        if active[LEAD]:
          self.lead(bar, phrase[bar % 2])
        if active[DRUMS]:
          self.drums(bar)
    preset = self.style.presets[self.preset_id]
    gains_db = np.asarray(preset.mix_db) + rng.normal(0.0, 3.0, 4)
    return Song(
        style=self.style.name, preset=self.preset_id, duration_s=self.duration_s,
        tempo=self.tempo, key=self.key, scale=self.scale_name, notes=tuple(self.notes),
        hits=tuple(self.hits), timbres=(preset.bass, preset.chords, preset.lead),
        kit=preset.kit, gains=tuple(float(g) for g in 10.0 ** (gains_db / 20)),
        loudness_db=float(rng.uniform(-26.0, -14.0)), noise_db=float(rng.uniform(-75.0, -50.0)),
        seed=int(rng.integers(2 ** 63)))


def compose(style, rng, duration_s):
  """Draws a track of `style` from `rng`: preset, tempo, key, scale, patterns, notes, mix.

  Args:
    style: a `Style`.
    rng: a numpy Generator; the song depends on nothing else.
    duration_s: length of the track.

  Returns:
    A `Song`.
  """
  return _Composer(style, rng, duration_s).song()


def _add(buffer, start, wave, gain):
  end = min(len(buffer), start + len(wave))
  if end > start:
    buffer[start:end] += gain * wave[:end - start]


def render(song, rate):
  """Renders a `Song` to float32 mono at `rate`, scaled to its loudness. [samples]"""
  n = int(round(song.duration_s * rate))
  rng = np.random.default_rng(song.seed)
  mix = np.zeros(n, np.float32)
  noise = _breath_noise(rate)
  cache = {}  # (voice, midi, samples held) -> note: music repeats itself
  for note in song.notes:
    start = int(round(note.start_s * rate))
    n_on = max(1, int(round(note.dur_s * rate)))
    if start >= n:
      continue
    key = (note.voice, note.midi, n_on)
    if key not in cache:
      cache[key] = render_note(song.timbres[note.voice], midi_hz(note.midi), n_on, rate,
                               noise[int(rng.integers(len(noise) // 2)):])
    _add(mix, start, cache[key], song.gains[note.voice] * note.velocity)
  sounds = drum_sounds(song.kit, rate)
  for hit in song.hits:
    _add(mix, int(round(hit.start_s * rate)), sounds[hit.drum], song.gains[DRUMS] * hit.velocity)
  rms = np.sqrt(np.mean(np.square(mix, dtype=np.float64)))
  mix *= np.float32(10.0 ** (song.loudness_db / 20) / max(rms, 1e-9))
  peak = np.max(np.abs(mix))
  if peak > 0.98:  # a limiter that only turns the track down: no clipping
    mix *= np.float32(0.98 / peak)
  mix += np.float32(10.0 ** (song.noise_db / 20)) * rng.standard_normal(n, dtype=np.float32)
  fade = min(n // 2, int(0.02 * rate))
  ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
  mix[:fade] *= ramp
  mix[n - fade:] *= ramp[::-1]
  return mix
