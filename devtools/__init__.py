"""Tools for developing and testing poembot, not part of the Telegram process: the Bot API emulator,
the sandbox chat (`poembot run`), the process supervisor behind it, and the example cards.
"""
