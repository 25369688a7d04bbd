"""poembot's model side: forms, vocabulary, prosody, the VAE, decoding and the worker.

Importing this package is cheap: TensorFlow is only loaded by the modules that need it.
"""
