"""The Bot API emulator for tests: it lives in bot/emulator.py so `poembot run` can use it as its sandbox.

Kept as a module so tests keep importing `from emulator import ...`.
"""
from bot.emulator import *  # noqa: F401,F403
from bot.emulator import ApiCall, ApiError, BotApiEmulator, check_html, command_entities, utf16_len  # noqa: F401
