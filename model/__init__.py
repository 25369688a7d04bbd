"""poembot's machine learning: vocabulary, the VAE, constrained decoding, generation, styles and the
latent index (its search, search.index and search.ivf, is numpy only, so the bot may import it).

Importing this package is cheap: TensorFlow is only loaded by the modules that need it.
"""
