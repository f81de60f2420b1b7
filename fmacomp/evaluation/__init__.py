"""Evaluation of trained runs on the test split -> eval/results.json (never imports reporting).

  evaluate.py          the evaluation of one study or run: runs each evaluator, writes results
  common.py            the evaluator interface (Context -> Results), run discovery
  clips.py             the test audio: deterministic clips and whole tracks
  rows.py              rate-distortion rows: scores, summaries, seeds, bitrates
  rate_distortion.py   float autoencoders on the test clips; the reference's table beside ours
  baselines.py         MP3 / Opus / resampling at a target bitrate, measured bytes; their rows
  codec_eval.py        codec operating points through real .fmac files
  genre.py             segment and song accuracy, precision/recall, confusion
  compressed_genre.py  genre accuracy from compressed files (no decoder call)
  projection.py        PCA and t-SNE of latents
"""
