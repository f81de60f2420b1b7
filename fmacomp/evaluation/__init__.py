"""Evaluation of trained runs on the test split -> eval/results.json (never imports reporting).

  evaluate.py          the evaluation of one study or run: runs each evaluator, writes results
  rate_distortion.py   autoencoder rows on the test clips beside the baselines
  baselines.py         MP3 / Opus / resampling at a target bitrate, measured bytes
  codec_eval.py        codec operating points through real .fmac files
  genre.py             segment and song accuracy, precision/recall, confusion
  compressed_genre.py  genre accuracy from compressed files (no decoder call)
  projection.py        PCA and t-SNE of latents
"""
