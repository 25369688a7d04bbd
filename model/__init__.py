"""poembot's machine learning: the VAE, constrained decoding, generation, styles and building the
latent index (its numpy search is the search package, which the bot may import).

Importing this package is cheap: TensorFlow is only loaded by the modules that need it.
"""
