"""Simplified and traditional Chinese: OpenCC converters built once per process.

The model writes simplified characters; users may type either script and may ask for traditional
output. No TensorFlow here: the bot and the worker both convert with this module.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Callable

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def converter(config: str, lenient: bool = False) -> Callable[[str], str]:
    """OpenCC's `config` conversion (t2s, s2t). lenient: when OpenCC cannot be loaded, log it and
    leave text as typed (the worker, for which conversion is a nicety) instead of raising (the bot)."""
    try:
        import opencc
        return opencc.OpenCC(config).convert
    except Exception:                       # noqa: BLE001 - conversion is a nicety, not a need
        if not lenient:
            raise
        log.warning("OpenCC %s unavailable; text is left as typed", config)
        return lambda s: s


def to_simplified(text: str, lenient: bool = False) -> str:
    return converter("t2s", lenient)(text) if text else text


def to_traditional(text: str, lenient: bool = False) -> str:
    return converter("s2t", lenient)(text) if text else text


def for_script(text: str, traditional: bool) -> str:
    """text (simplified) in the script the reader chose."""
    return to_traditional(text) if traditional else text
