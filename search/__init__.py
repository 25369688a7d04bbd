"""The search behind /similar and the theme prior: the latent index, its inverted lists, the ranking's
reasons, the theme index and poem popularity. numpy only, no TensorFlow, so the bot may import it;
building the index needs the encoder and lives in model/index_build.py.
"""
