"""Simplified and traditional Chinese: OpenCC converters built once per process.

The model writes simplified characters; users may type either script and may ask for traditional output.
"""
from __future__ import annotations

from functools import lru_cache

import opencc


@lru_cache(maxsize=2)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    return _converter("t2s").convert(text) if text else text


def to_traditional(text: str) -> str:
    return _converter("s2t").convert(text) if text else text


def for_script(text: str, traditional: bool) -> str:
    """text (simplified) in the script the reader chose."""
    return to_traditional(text) if traditional else text
