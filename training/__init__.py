"""poembot's offline side: training, fine-tuning and evaluation (the corpus they read is the corpus package).

Imports model, never bot.
"""
