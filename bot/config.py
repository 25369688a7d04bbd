"""The bot's settings: protocol.settings.BotSettings, under the name the bot's modules use.

Config.from_env() validates everything up front so a typo fails at start-up, not at the first message;
ConfigError names the variable (never a secret's value). Config(...) with values builds one without
reading the environment (the tests); config.model_copy(update={...}) changes a few.
"""
from __future__ import annotations

from protocol.settings import DEFAULT_API_URL, BotSettings, ConfigError

Config = BotSettings

__all__ = ["Config", "ConfigError", "DEFAULT_API_URL"]
