"""poembot's offline side: corpus download and build, training and evaluation.

Imports model, never bot.
"""
