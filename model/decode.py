"""Batched constrained decoding: a whole mixed batch of requests in one compiled TensorFlow loop.

Every constraint is a per-row tensor (forced tokens, tone targets, rhyme slots, repeat caps), so one
batch mixes forms and requests; the host only plans constraints before and checks novelty after.
"""
from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from verse import script
from model.constraints import (FREE, PING, SOFT_TONE_PENALTY, ZE, ZE_OR_RHYME, NoveltyTable, ProsodyTables, RowPlan,
                               pad_plans, plan_poem)
from verse.forms import FORM_INDEX, FORMS, OTHER, classify, poem_text, split_lines
from model.styles import BASE, StyleBank, StyleMix, stacked_tensors, style_prior
from model.requests import (E_INTERNAL, E_INVALID, E_UNKNOWN_STYLE, TONE_MODES, Answer, EncodeRequest, PoemRequest,
                            Request, RequestError)
from verse.vocab import BOS, EOS, N_SPECIALS, PAD, Vocab
from model.rescore import PairTable, ScoreWeights, line_gain, line_spans, load_pairs, unattested_share
from model.titles import encode_title

log = logging.getLogger(__name__)

# Histogram nucleus (see ConstrainedDecoder._nucleus): a probability's float32 bits shifted right by
# NUCLEUS_SHIFT are its exponent and top mantissa bits, a monotone log2 with 2^(23-NUCLEUS_SHIFT)
# bins per octave, so the histogram needs no log, multiply or clip. Probabilities are relative to the
# row's best (<= 1.0, whose shifted bits are 127 << 3 = 1016), so NUCLEUS_BINS covers every value.
NUCLEUS_SHIFT = 20          # 8 bins per octave, linear inside it: a bin spans at most a factor 9/8
NUCLEUS_BINS = 1024
NOISE_SEED = 20261201       # fixed: every process hashes with the same token keys (see exp_noise)
# Constraint tiers as additive penalties, so one argmax does what the old chain of masks and
# "relax when empty" fallbacks did: a character breaking a hard tone loses to every legal one, a
# repeat beyond the cap to every tone breaker, a wrong rhyme to every repeat, and a non-character
# is never written. exp() of the gap underflows to exactly 0, so a tier only matters when every
# better one is empty (then the row is marked relaxed).
TONE_PENALTY = 1000.0
REPEAT_PENALTY_LOGIT = 2000.0
RHYME_PENALTY = 8000.0
NEVER = 1e9
RELAXED_BELOW = -500.0      # a written character whose penalty is below this broke a constraint
LIKE_NOISE = 0.5            # std of the noise added to a "near these poems" latent
NOVELTY_RETRIES = 4         # re-decodes of a row that copied a corpus line
NOVELTY_FILE = "novelty.npy"
MU_DECIMALS = 4
RELAXED_PENALTY = 10.0      # a candidate whose constraints had to be relaxed loses to any other
COPY_PENALTY = 10.0         # so does one that copied a corpus line (when novelty is asked for)


def _bucket(n: int) -> int:
    """Next power of two: bounds the number of distinct shapes the compiled loop sees."""
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _mix32(x: tf.Tensor) -> tf.Tensor:
    """lowbias32 integer hash (uint32 in, uint32 out); wrap-around multiply is intended."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def token_keys(vocab_size: int, seed: int = NOISE_SEED) -> np.ndarray:
    """A fixed random 32-bit key per token, the same in every process (so seeds reproduce)."""
    return np.random.default_rng(seed).integers(0, 2**32, vocab_size, dtype=np.uint64).astype(np.uint32)


def exp_noise(keys: tf.Tensor, seeds: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """1/E [B, V] with E ~ Exponential(1) from (row seed, step, token) alone, for an exponential race.

    argmax(p / E) is an exact draw from p (the Gumbel-max trick without its second log), and the
    noise depends on the row's seed only, never on its batch neighbours. The row's mixed key XOR the
    token's random key goes through one multiply-xorshift-multiply round, whose top 23 bits are the
    uniform: ten cheap passes over [B, V] where the old full hash and double log took twenty. A fixed
    table of noise rows was 4% faster but, with 512 rows, biased every draw from a given distribution
    by about 1/sqrt(512); this is exact."""
    t = tf.cast(step, tf.uint32) * tf.constant(0x9E3779B9, tf.uint32)
    row = tf.bitwise.bitwise_xor(_mix32(seeds[:, 0] + t), seeds[:, 1])
    h = tf.bitwise.bitwise_xor(row[:, None], keys[None, :]) * tf.constant(0x7FEB352D, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(15, tf.uint32))) * tf.constant(0x846CA68B, tf.uint32)
    one_to_two = tf.bitwise.bitwise_or(tf.bitwise.right_shift(h, tf.constant(9, tf.uint32)),
                                       tf.constant(0x3F800000, tf.uint32))       # float bits of [1, 2)
    u = tf.bitcast(one_to_two, tf.float32) - 0.99999994                          # (0, 1)
    return -1.0 / tf.math.log(u)


class ConstrainedDecoder:
    """The compiled decoding loop over a PoemVAE's decoder_step, with prosody tables as constants."""

    def __init__(self, model: Any, tables: ProsodyTables, jit_compile: bool = False,
                 styles: StyleBank | None = None) -> None:
        self.model = model
        # Every style adapter, stacked: a batch mixes styles by a per-row mask (model/styles.py).
        self.styles: dict[str, Any] | None = None
        if styles:
            self.styles = stacked_tensors(styles)
        vocab_size = int(tables.tone.shape[0])
        self.vocab_size = vocab_size
        self.n_groups = int(tables.rhyme.shape[0])
        is_char = (np.arange(vocab_size) >= N_SPECIALS) & tables.writable
        self.never = tf.constant(np.where(is_char, 0.0, -NEVER).astype(np.float32))   # [V]
        # The tone penalty of every character for each (tone mode, requirement) pair, so a step
        # gathers one row per poem: row TONE_MODES.index(mode) * 4 + tone_req (0 none, 平, 仄,
        # 仄 or rhyme; the rhyme half of the last is added back where a row rhymes).
        ping, ze = (tables.tone & PING) > 0, (tables.tone & ZE) > 0
        breaks = np.stack([np.zeros(vocab_size, bool), ~ping, ~ze, ~ze]).astype(np.float32)
        cost = {"off": 0.0, "soft": SOFT_TONE_PENALTY, "hard": TONE_PENALTY}
        self.tone_penalty = tf.constant(np.concatenate([-cost[m] * breaks for m in TONE_MODES]))  # [12, V]
        self.rhyme = tf.constant(tables.rhyme.astype(np.float32))                     # [G, V]
        self.rhyme_t = tf.constant(tables.rhyme.T.astype(np.float32))                 # [V, G]
        # Which rows of the rhyme table each rhyme set owns (all of them for 诗: one set), and the
        # tone a rhyme slot asks for as part of the rhyme (a 词's 平 or 仄 rhyme), which no tone
        # mode softens: a slot's tone_req breaks cost what a wrong rhyme does.
        per_set = self.n_groups // tables.sets
        self.set_rows = tf.constant(np.kron(np.eye(tables.sets), np.ones(per_set)).astype(np.float32))  # [S, G]
        self.rhyme_tone = tf.constant(-RHYME_PENALTY * breaks)                            # [4, V]
        self.templated = int(getattr(model.config, "template_dim", 0) or 0) > 0
        self.keys = tf.constant(token_keys(vocab_size))                               # [V]
        # A character right after itself costs a repeat's penalty unless the corpus doubles it.
        self.double_cost = tf.constant(np.where(tables.doubles, 0.0, -REPEAT_PENALTY_LOGIT)
                                       .astype(np.float32))                            # [V]
        spec = [
            tf.TensorSpec([None, None], tf.float32),   # z
            tf.TensorSpec([None], tf.int32),           # form
            tf.TensorSpec([None, None], tf.int32),     # forced
            tf.TensorSpec([None, None], tf.int8),      # tone_req
            tf.TensorSpec([None], tf.int32),           # tone_mode: index into TONE_MODES
            tf.TensorSpec([None, None], tf.bool),      # rhyme_pos
            tf.TensorSpec([None, None], tf.bool),      # groups
            tf.TensorSpec([None], tf.int32),           # cap
            tf.TensorSpec([None], tf.float32),         # temperature
            tf.TensorSpec([None], tf.float32),         # top_p
            tf.TensorSpec([None], tf.float32),         # min_p
            tf.TensorSpec([None, 2], tf.uint32),       # seeds
            tf.TensorSpec([None], tf.int32),           # style: index into the bank, -1 = base
            tf.TensorSpec([None, None], tf.int32),     # title: ids, PAD-filled ([B, 0] untitled)
            tf.TensorSpec([None, None], tf.int32),     # rhyme_set: the set of each rhyme slot (词)
            tf.TensorSpec([None, None, None], tf.float32),  # template: [B, T, F] (词; F = 0 for 诗)
            tf.TensorSpec([], tf.bool),                # with_logp
        ]
        self.jit_compile = jit_compile
        # No autograph: the loop is written with explicit graph ops (XLA needs them anyway), and
        # autograph's rewriting of the style adapters' methods inside tf.cond broke their binding.
        self._fn = tf.function(self._decode, input_signature=spec, jit_compile=jit_compile,
                               autograph=False)

    def __call__(self, with_logp: bool = True, **arrays: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tokens [B, T], relaxed [B], mean log-probability per written character [B], the
        log-probability of each position [B, T] (0 where forced); the last two are zeros unless
        with_logp, which costs a log-sum-exp over the vocabulary per step)."""
        B, T = arrays["forced"].shape
        if "title" not in arrays:
            arrays["title"] = np.zeros((B, 0), np.int32)
        arrays.setdefault("rhyme_set", np.zeros((B, T), np.int32))
        arrays.setdefault("template", np.zeros((B, T, 0), np.float32))
        tokens, relaxed, logp, step_logp = self._fn(**arrays, with_logp=tf.constant(with_logp))
        return tokens.numpy(), relaxed.numpy(), logp.numpy(), step_logp.numpy()

    def _keep(self, p: tf.Tensor, top_p: tf.Tensor, min_p: tf.Tensor, nucleus: tf.Tensor) -> tf.Tensor:
        """Tokens a row may draw: at least min_p times the best's probability, and inside the top_p
        nucleus when `nucleus` (some row asks for top_p < 1). p [B, V] has each row's best at 1.0."""
        return tf.cond(nucleus, lambda: self._nucleus(p, top_p) & (p >= min_p[:, None]),
                       lambda: p >= min_p[:, None])

    def _nucleus(self, p: tf.Tensor, top_p: tf.Tensor) -> tf.Tensor:
        """The nucleus: the most likely tokens whose mass first reaches top_p, per row, as a mask.

        p [B, V] are unnormalised probabilities with each row's best at 1.0. Sorting 6,000 of them
        per row each step costs more than the GRU, so the threshold comes from a per-row histogram
        over the float's exponent bits (NUCLEUS_SHIFT): the boundary bin is kept whole, so the
        nucleus holds at least top_p of the mass plus near-ties within a factor 9/8. Under XLA
        (no bincount) the same threshold comes from bisection."""
        want = top_p * tf.reduce_sum(p, axis=1)
        if self.jit_compile:
            lo = tf.fill(tf.shape(top_p), -30.0)          # log2 of the threshold
            hi = tf.zeros_like(top_p)
            for _ in range(12):
                mid = (lo + hi) / 2
                ok = tf.reduce_sum(tf.where(p >= tf.pow(2.0, mid)[:, None], p, 0.0), axis=1) >= want
                lo, hi = tf.where(ok, mid, lo), tf.where(ok, hi, mid)
            return (p >= tf.pow(2.0, lo)[:, None]) | (top_p >= 1.0)[:, None]
        bins = tf.bitwise.right_shift(tf.bitcast(p, tf.int32), NUCLEUS_SHIFT)
        mass = tf.math.bincount(bins, weights=p, axis=-1, minlength=NUCLEUS_BINS, maxlength=NUCLEUS_BINS)
        above = tf.math.cumsum(mass, axis=1, exclusive=True, reverse=True)
        lowest = NUCLEUS_BINS - tf.reduce_sum(tf.cast(above < want[:, None], tf.int32), axis=1)
        return bins >= tf.where(top_p >= 1.0, 0, lowest)[:, None]

    def _decode(self, z, form, forced, tone_req, tone_mode, rhyme_pos, groups, cap, temperature, top_p,
                min_p, seeds, style, title, rhyme_set, template, with_logp):
        B = tf.shape(forced)[0]
        T = tf.shape(forced)[1]
        V = self.vocab_size
        is_char_forced = forced >= N_SPECIALS
        # Every character of the poem so far, with the forced ones of later positions already in:
        # they count against the repeat cap from the start, so free positions never use up a
        # character that a later forced position needs. A written token's count is a [B, T] compare.
        written0 = tf.where(is_char_forced, forced, -1)
        # The characters that joined the rhyme, by position (-1 elsewhere): a rhyme is never reused.
        rhymed0 = tf.where(is_char_forced & rhyme_pos, forced, -1)
        rows = tf.repeat(tf.range(B), T)
        idx = tf.stack([rows, tf.reshape(tf.maximum(written0, 0), [-1])], axis=1)
        counts0 = tf.tensor_scatter_nd_add(tf.zeros([B, V], tf.int32), idx,
                                           tf.reshape(tf.cast(is_char_forced, tf.int32), [-1]))
        # The standing penalty of each (row, character): never for non-characters, a repeat
        # penalty once the cap is used up; one entry per row is scattered in after each step.
        block0 = self.never[None, :] + tf.where(counts0 >= cap[:, None], -REPEAT_PENALTY_LOGIT, 0.0)
        tone_row0 = tone_mode * 4
        inv_temp = 1.0 / temperature
        tempered = tf.reduce_any(tf.not_equal(temperature, 1.0))
        # The histogram behind top-p is a fifth of a step; min-p is one compare. Skip what no row asks for.
        nucleus = tf.reduce_any(top_p < 1.0)
        adapter = StyleMix(self.styles, style) if self.styles else None
        styled = tf.reduce_any(style >= 0)

        # The title's vector, once per batch (None for a model trained without titles).
        title_vec = (self.model.title_vector(title, B)
                     if getattr(self.model.config, "title_len", 0) else None)

        def step(t, prev, state):
            """The decoder's step, through the style adapters only when some row has a style."""
            if self.templated:
                return self.model.decoder_step(prev, state, z, form, title_vec=title_vec, template=template[:, t])
            if adapter is None:
                return self.model.decoder_step(prev, state, z, form, title_vec=title_vec)
            return tf.cond(styled,
                           lambda: self.model.decoder_step(prev, state, z, form, adapter, title_vec),
                           lambda: self.model.decoder_step(prev, state, z, form, title_vec=title_vec))

        def set_mask(t):
            """[B, G]: the rhyme table rows of the set each row's position t rhymes in."""
            return tf.gather(self.set_rows, rhyme_set[:, t])

        state0 = self.model.decoder_init(z, form, title_vec)
        prev0 = tf.fill([B], tf.constant(BOS, tf.int32))
        out0 = tf.TensorArray(tf.int32, size=T)
        step_lp0 = tf.TensorArray(tf.float32, size=T)
        relaxed0 = tf.zeros([B], tf.bool)
        groups0 = tf.cast(groups, tf.float32)
        row_ids = tf.range(B)
        positions = tf.range(T)[None, :]

        def penalties(t, grp, rhymed):
            """Tone and rhyme penalties [B, V] of step t (the rhyme part only where a row rhymes)."""
            req = tf.cast(tone_req[:, t], tf.int32)
            tone = tf.gather(self.tone_penalty, tone_row0 + req)
            rp = rhyme_pos[:, t]
            opt = req == ZE_OR_RHYME

            def with_rhyme():
                # Static shapes (XLA): every position scatters, the unrhymed ones a 0 onto token 0.
                at = tf.stack([rows, tf.reshape(tf.maximum(rhymed, 0), [-1])], axis=1)
                used = tf.tensor_scatter_nd_max(tf.zeros([B, V], tf.int32), at,
                                                tf.reshape(tf.cast(rhymed >= 0, tf.int32), [-1]))
                fresh = (tf.matmul(grp * set_mask(t), self.rhyme) > 0.5) & (used == 0)
                # 首句入韵: line 1 may end on a 平 character that joins the rhyme instead of a 仄 one.
                toned = tf.where(opt[:, None] & fresh, 0.0, tone)
                # A 词's rhyme slot asks for its tone as part of the rhyme (诗 slots ask none: 0).
                slot_tone = tf.where(rp[:, None], tf.gather(self.rhyme_tone, tf.where(opt, 0, req)), 0.0)
                return toned + slot_tone + tf.where(rp[:, None] & ~fresh, -RHYME_PENALTY, 0.0)

            return tf.cond(tf.reduce_any(rp | opt), with_rhyme, lambda: tone)

        def sample(t, prev, state, written, rhymed, block, grp, relaxed):
            """One step where at least one row writes a character."""
            logits, state = step(t, prev, state)
            f = forced[:, t]
            free = f == FREE
            penalty = tf.tensor_scatter_nd_add(block + penalties(t, grp, rhymed),
                                               tf.stack([row_ids, prev], axis=1),
                                               tf.gather(self.double_cost, prev))
            x = logits + penalty
            x = x - tf.reduce_max(x, axis=1, keepdims=True)
            p = tf.exp(tf.cond(tempered, lambda: x * inv_temp[:, None], lambda: x))
            # Exponential race over the nucleus: argmax(p / E) is an exact draw from p, and the noise
            # depends on the row's seed only, never on its batch neighbours.
            race = tf.where(self._keep(p, top_p, min_p, nucleus), p * exp_noise(self.keys, seeds, t), 0.0)
            tok = tf.where(free, tf.argmax(race, axis=1, output_type=tf.int32), f)
            at = tf.stack([row_ids, tok], axis=1)
            # The model's own log-probability of what it wrote (before penalties and temperature):
            # best-of-K ranks candidates by its mean, and the rescorer reads it line by line.
            step_lp = tf.cond(with_logp, lambda: tf.where(
                free, tf.gather(logits, tok, batch_dims=1) - tf.reduce_logsumexp(logits, axis=1), 0.0),
                lambda: tf.zeros([B], tf.float32))
            relaxed = relaxed | (free & (tf.gather_nd(penalty, at) < RELAXED_BELOW))

            now = (positions == t) & free[:, None]
            mask = set_mask(t)
            fresh = self._in_group(grp * mask, tok) & ~tf.reduce_any(rhymed == tok[:, None], axis=1)
            written = tf.where(now, tok[:, None], written)
            spent = free & (tf.reduce_sum(tf.cast(written == tok[:, None], tf.int32), axis=1) >= cap)
            block = tf.tensor_scatter_nd_min(block, at, tf.where(spent, -REPEAT_PENALTY_LOGIT, 0.0))
            # Line 1 joins the rhyme when its end is one of the allowed rhyme characters.
            joins = rhyme_pos[:, t] | ((tone_req[:, t] == ZE_OR_RHYME) & fresh)
            rhymed = tf.where(now & joins[:, None], tok[:, None], rhymed)
            grp = tf.where(joins[:, None], grp * (1.0 - mask + mask * tf.gather(self.rhyme_t, tok)), grp)
            return tok, step_lp, state, written, rhymed, block, grp, relaxed

        def copy(t, prev, state, written, rhymed, block, grp, relaxed):
            """A step where every row is forced (punctuation, EOS, fixed text): no logits needed."""
            _, state = step(t, prev, state)
            tok = forced[:, t]
            mask = set_mask(t)
            grp = tf.where(rhyme_pos[:, t][:, None], grp * (1.0 - mask + mask * tf.gather(self.rhyme_t, tok)), grp)
            return tok, tf.zeros([B], tf.float32), state, written, rhymed, block, grp, relaxed

        def body(t, prev, *carry):
            *carry, out, step_lps = carry
            tok, step_lp, *carry = tf.cond(tf.reduce_any(forced[:, t] == FREE),
                                           lambda: sample(t, prev, *carry),
                                           lambda: copy(t, prev, *carry))
            return (t + 1, tok, *carry, out.write(t, tok), step_lps.write(t, step_lp))

        loop = tf.while_loop(
            lambda t, *_: t < T, body,
            (tf.constant(0), prev0, state0, written0, rhymed0, block0, groups0, relaxed0, out0, step_lp0))
        relaxed, out, step_lps = loop[-3], loop[-2], tf.transpose(loop[-1].stack())
        # The mean over written characters: forced positions hold 0 in step_lps.
        n_free = tf.reduce_sum(tf.cast(forced == FREE, tf.float32), axis=1)
        return (tf.transpose(out.stack()), relaxed, tf.reduce_sum(step_lps, axis=1) / tf.maximum(n_free, 1.0),
                step_lps)

    def _in_group(self, grp: tf.Tensor, tok: tf.Tensor) -> tf.Tensor:
        """Whether each row's token belongs to one of the row's remaining rhyme groups: [B] bool."""
        return tf.reduce_sum(grp * tf.gather(self.rhyme_t, tok), axis=1) > 0.5


@dataclass
class Row:
    """One candidate poem to decode: its plan plus sampling settings."""
    job_index: int
    poem_index: int
    plan: RowPlan
    z: np.ndarray
    cap: int
    temperature: float
    top_p: float
    min_p: float
    tone_mode: str
    seed: int
    novelty: bool = True
    candidate: int = 0                  # 0..K-1 of best-of-K; candidate 0 is the K=1 poem
    best_of: int = 1                    # K: above 1 the decoder accumulates log-probabilities
    theme: np.ndarray | None = None     # the theme's mean μ, when the latent came from one
    style: int = BASE                   # index of the row's style adapter in the bank
    title: np.ndarray | None = None     # the title's ids (model.titles), for a titled model


@dataclass
class Decoded:
    """What decode_rows returns, one entry per row."""
    tokens: np.ndarray                  # int32 [N, T]
    relaxed: np.ndarray                 # bool [N]: a constraint had to give way
    logp: np.ndarray                    # float32 [N]: mean log-probability per written character
    step_logp: np.ndarray | None = None  # float32 [N, T]: each position's (0 where forced)


def row_seeds(seed: int, poem_index: int, attempt: int, candidate: int = 0) -> np.ndarray:
    key = [seed, poem_index, attempt] + ([candidate] if candidate else [])
    return np.random.SeedSequence(key).generate_state(2, np.uint32)


class Generator:
    """A loaded model with its vocabulary and tables: turns requests (model.requests) into Answers."""

    def __init__(self, model: Any, vocab: Vocab, config: Any, tables: ProsodyTables | None = None,
                 novelty: NoveltyTable | None = None, jit_compile: bool = False,
                 max_rows: int = 1024, styles: StyleBank | None = None,
                 pairs: PairTable | None = None) -> None:
        self.model = model
        self.styles = styles if styles is not None else StyleBank()
        self.vocab = vocab
        self.config = config
        self.tables = tables if tables is not None else ProsodyTables.from_vocab(vocab)
        if pairs is not None and tables is None:
            self.tables.doubles = pairs.doubles()
        self.novelty = novelty
        self.max_rows = max_rows
        self.latent_dim = int(config.latent_dim) if getattr(config, "use_latent", True) else 0
        self.decoder = ConstrainedDecoder(model, self.tables, jit_compile=jit_compile,
                                          styles=self.styles)
        self._encode_fn = tf.function(
            lambda tokens, form: model.encode(tokens, form)[0],
            input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)])
        self.title_len = int(getattr(config, "title_len", 0) or 0)
        self.pairs = pairs
        self.weights = ScoreWeights()
        self._alone_fn = tf.function(
            self._alone_logp, input_signature=[
                tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32)])

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: str | Path, novelty: bool = True, styles_dir: str | Path | None = None,
             **kwargs: Any) -> "Generator":
        """The model in model_dir; with novelty, its novelty table (from the built corpus if the model
        folder has none); the style adapters in styles_dir trained on this model. Themes come from
        the theme index the loaders attach (worker.service)."""
        from search.files import model_version
        from model.vae import load_model
        model_dir = Path(model_dir)
        model, vocab, config = load_model(model_dir)
        table = None
        if novelty:
            table = load_novelty(model_dir, _try_corpus)
        styles = StyleBank.load(styles_dir, config, model_version(model_dir)) if styles_dir else None
        pairs = load_pairs(model_dir, len(vocab))
        return cls(model, vocab, config, novelty=table, styles=styles, pairs=pairs, **kwargs)

    # --- script conversion --------------------------------------------------------------------
    def to_simplified(self, text: str) -> str:
        return script.to_simplified(text, lenient=True)

    def to_traditional(self, text: str) -> str:
        return script.to_traditional(text, lenient=True)

    # --- entry points -------------------------------------------------------------------------
    def run(self, requests: Sequence[Request]) -> list[Answer]:
        """Answers for a mixed list of poem and encode requests, in order; never raises per request."""
        results: list[Answer | None] = [None] * len(requests)
        gen = [(i, j) for i, j in enumerate(requests) if isinstance(j, PoemRequest)]
        enc = [(i, j) for i, j in enumerate(requests) if isinstance(j, EncodeRequest)]
        if gen:
            for (i, _), r in zip(gen, self.generate([j for _, j in gen])):
                results[i] = r
        for i, request in enc:
            results[i] = self.encode_job(request)
        return [r for r in results if r is not None]

    def encode_job(self, request: EncodeRequest) -> Answer:
        texts = [self.to_simplified(t) for t in request.texts]
        lines = [split_lines(t) for t in texts]
        forms = [classify(ls) for ls in lines]
        mus = self.encode_lines(lines, forms)
        poems = []
        for ls, form, mu in zip(lines, forms, mus):
            poems.append({"text": poem_text(ls), "lines": ls, "form": form,
                          "mu": [round(float(x), MU_DECIMALS) for x in mu], **self.verdict(ls)})
        return Answer(request_id=request.request_id, ok=True, poems=poems, kind="encode")

    def plan(self, requests: Sequence[PoemRequest]) -> tuple[list[Row], list[Answer | None]]:
        """Check, choose latents and lay out every poem; refused requests get an error Answer."""
        results: list[Answer | None] = [None] * len(requests)
        rows: list[Row] = []
        latents, centres = self._latents(requests, results)
        for ji, request in enumerate(requests):
            if results[ji] is not None:
                continue
            title = self._title_ids(request.title)
            try:
                mine = []
                for k in range(request.n):
                    plan = plan_poem(request, self.vocab, self.tables, np.random.default_rng([request.seed, k, 11]))
                    # The K candidates share the plan and the latent; only the draws differ.
                    mine += [Row(ji, k, plan, latents[ji][k], request.max_repeat, float(request.temperature),
                                 float(request.top_p), float(request.min_p), request.tone_mode, request.seed,
                                 request.novelty,
                                 candidate=c, best_of=request.best_of, theme=centres.get(ji),
                                 style=self.styles.index(request.style), title=title)
                             for c in range(request.best_of)]
                rows += mine
            except RequestError as exc:
                results[ji] = Answer.error(request.request_id, exc.code, exc.message)
        return rows, results

    def generate(self, requests: Sequence[PoemRequest]) -> list[Answer]:
        """One Answer per request; all rows of all valid requests decode together."""
        rows, results = self.plan(requests)
        if rows:
            decoded = self.decode_rows(rows, attempts=[0] * len(rows))
            lines = [self.vocab.decode_lines(t) for t in decoded.tokens]
            keep, scores = self._select(rows, lines, decoded)
            rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
            relaxed = decoded.relaxed[keep]
            novel = self._enforce_novelty(rows, lines, relaxed)
            mus = self.encode_lines(lines, [r.plan.form.name for r in rows]) if self.latent_dim else None
            by_job: dict[int, list[dict]] = {}
            for i, row in enumerate(rows):
                by_job.setdefault(row.job_index, []).append(
                    self._poem(requests[row.job_index], row, lines[i], bool(relaxed[i]), novel[i],
                               None if mus is None else mus[i], float(scores[i])))
            for ji, poems in by_job.items():
                request = requests[ji]
                results[ji] = Answer(request_id=request.request_id, ok=True, poems=poems)
        return [r if r is not None else Answer.error(requests[i].request_id, E_INTERNAL, "no result")
                for i, r in enumerate(results)]

    # --- pieces ------------------------------------------------------------------------------
    def _select(self, rows: list[Row], lines: list[list[str]], decoded: Decoded
                ) -> tuple[list[int], np.ndarray]:
        """Index of the best-scoring candidate of each (request, poem), in row order, and its score."""
        scores = self._score(rows, lines, decoded)
        keep = best_candidates(rows, scores)
        return keep, scores[keep]

    def _score(self, rows: list[Row], lines: list[list[str]], decoded: Decoded) -> np.ndarray:
        """Best-of-K score per row (weights in model.rescore.ScoreWeights): the decoder's mean
        log-probability per written character; plus the coherence of its lines (how much each
        line gains from the ones before it); less the share of unattested character pairs, less a
        little per repeated character; plus the rarity credit and the theme fit; relaxed or copied
        candidates lose to any other.

        The LM baseline is deliberately not part of it: it is the judge of judge_nll_gen, and a
        selection by the judge would flatter the measure rather than the poems."""
        w = self.weights
        scores = decoded.logp.astype(np.float64).copy()
        gains = self._coherence(rows, lines, decoded) if w.coherence else np.zeros(len(rows))
        for i, (row, ls) in enumerate(zip(rows, lines)):
            text = "".join(ls)
            scores[i] -= w.repeat * (len(text) - len(set(text)))
            scores[i] += w.coherence * gains[i]
            if w.unattested:
                ids = [[self.vocab.id(c) for c in line] for line in ls]
                scores[i] -= w.unattested * unattested_share(self.pairs, ids)
            if text and w.rarity:
                ranks = [max(self.vocab.id(c) - N_SPECIALS + 1, 1) for c in text]
                scores[i] += w.rarity * float(np.mean(np.log(ranks)))
            if decoded.relaxed[i]:
                scores[i] -= RELAXED_PENALTY
            if row.novelty and self._copied(row, ls):
                scores[i] -= COPY_PENALTY
        themed = [i for i, r in enumerate(rows) if r.theme is not None]
        if themed and self.latent_dim and w.theme:
            mus = self.encode_lines([lines[i] for i in themed], [rows[i].plan.form.name for i in themed])
            for k, i in enumerate(themed):
                centre = rows[i].theme
                cos = float(mus[k] @ centre / (np.linalg.norm(mus[k]) * np.linalg.norm(centre) + 1e-9))
                scores[i] += w.theme * cos
        return scores

    def _coherence(self, rows: list[Row], lines: list[list[str]], decoded: Decoded) -> np.ndarray:
        """model.rescore.line_gain of every row: its lines' log-probabilities in the poem (from the
        decoding loop) against each line decoded alone as an opening line (one teacher-forced pass).
        A styled row's alone pass runs on the base decoder: the K candidates of one poem share the
        style, so the ranking among them is what counts."""
        gains = np.zeros(len(rows))
        if decoded.step_logp is None or not any(r.best_of > 1 for r in rows):
            return gains
        # Each line after the first of each candidate, alone: BOS, the line, its mark. Its
        # log-probabilities go straight into the candidate's [n_lines, L] table (line 1 stays 0).
        seqs, owners = [], []
        solo: dict[int, np.ndarray] = {}
        for i, (row, ls) in enumerate(zip(rows, lines)):
            form = row.plan.form
            if row.best_of <= 1 or len(ls) != form.n_lines:
                continue
            solo[i] = np.zeros((form.n_lines, form.line_len), np.float32)
            for k in range(1, form.n_lines):
                seqs.append(self.vocab.encode_lines([ls[k]])[:-1])
                owners.append((i, k))
        # Lines of one length together, unpadded: the function is not compiled per shape, and a
        # batch of 五言 padded to 七言 (or to a power of two) was a third of this pass's time.
        by_length: dict[int, list[int]] = {}
        for n, seq in enumerate(seqs):
            by_length.setdefault(len(seq), []).append(n)
        for length, members in by_length.items():
            for start in range(0, len(members), self.max_rows):
                idx = members[start:start + self.max_rows]
                mine = [rows[owners[n][0]] for n in idx]
                z = np.stack([r.z for r in mine]).astype(np.float32).reshape(len(idx), self.latent_dim)
                form = np.array([FORM_INDEX[r.plan.form.name] for r in mine], np.int32)
                lp = self._alone_fn(tf.constant(np.asarray([seqs[n] for n in idx], np.int32)),
                                    tf.constant(z), tf.constant(form),
                                    tf.constant(row_titles(mine, self.title_len))).numpy()
                for n, row_lp in zip(idx, lp):
                    i, k = owners[n]
                    solo[i][k] = row_lp[:length - 2]          # the line's characters, not its mark
        for i, alone in solo.items():
            form = rows[i].plan.form
            spans = line_spans(form.line_len, form.n_lines)
            context = np.stack([decoded.step_logp[i, a:b] for a, b in spans])
            free = np.stack([rows[i].plan.forced[a:b] == FREE for a, b in spans])
            gains[i] = line_gain(context, alone, free)
        return gains

    def pair_logp(self, firsts: Sequence[str], seconds: Sequence[str]) -> np.ndarray:
        """Mean log-probability per character of each second line after its first, as the two
        lines opening an untitled 律诗 (五律 or 七律 by length) at the prior's centre: how well the
        poem model, which has read whole poems, thinks the line answers the one before it."""
        out = np.zeros(len(firsts))
        by_length: dict[int, list[int]] = {}
        for i, first in enumerate(firsts):
            by_length.setdefault(len(first), []).append(i)
        for length, idx in by_length.items():
            form = opening_form(length)
            for start in range(0, len(idx), self.max_rows):
                chunk = idx[start:start + self.max_rows]
                tokens = np.array([self.vocab.encode_lines([firsts[i], seconds[i]]) for i in chunk], np.int32)
                lp = self._alone_fn(tf.constant(tokens),
                                    tf.zeros((len(chunk), self.latent_dim), tf.float32),
                                    tf.constant(np.full(len(chunk), form, np.int32)),
                                    tf.constant(np.full((len(chunk), self.title_len), PAD, np.int32))).numpy()
                # Output j predicts token j+1: the second line's characters are tokens length+2 ..
                out[chunk] = lp[:, length + 1:2 * length + 1].mean(axis=1)
        return out

    def start_after(self, firsts: Sequence[str]) -> tuple[np.ndarray, tuple]:
        """The poem decoder after each line (all of one length) read as the opening line of an
        untitled 律诗 at the prior's centre, its mark included: the log-probabilities [B, V] of the
        next line's first character, and the carry step_after continues from."""
        length = len(firsts[0])
        form = tf.constant(np.full(len(firsts), opening_form(length), np.int32))
        z = tf.zeros((len(firsts), self.latent_dim), tf.float32)
        title_vec = self.model.title_vector(None, len(firsts))
        inputs = np.array([self.vocab.encode_lines([f], eos=False) for f in firsts], np.int32)
        h = self.model.decode_hidden(tf.constant(inputs), z, form, title=None)[:, -1]
        return _log_softmax(tf.cast(self.model.out(h), tf.float32)), (h, z, form, title_vec)

    def step_after(self, tokens: np.ndarray, carry: tuple) -> tuple[np.ndarray, tuple]:
        """One step of the line start_after began: feed tokens [B], get the next log-probabilities."""
        h, z, form, title_vec = carry
        logits, h = self.model.decoder_step(tf.constant(tokens, tf.int32), h, z, form, title_vec=title_vec)
        return _log_softmax(logits), (h, z, form, title_vec)

    def _alone_logp(self, tokens: tf.Tensor, z: tf.Tensor, form: tf.Tensor, title: tf.Tensor
                    ) -> tf.Tensor:
        """Log-probability [N, T-1] of tokens[:, 1:] as the opening of a poem of latent z."""
        title_in = title if self.title_len else None
        logits = self.model.decode_teacher_forced(tokens[:, :-1], z, form, title=title_in)
        logits = tf.cast(logits, tf.float32)
        target = tokens[:, 1:]
        picked = tf.gather(logits, target, batch_dims=2)
        return picked - tf.reduce_logsumexp(logits, axis=-1)

    def _latents(self, requests: Sequence[PoemRequest], results: list[Answer | None]
                 ) -> tuple[list[list[np.ndarray]], dict[int, np.ndarray]]:
        """z for every poem of every request, and the theme centre of requests whose z came from one;
        refused requests become error Answers."""
        out: list[list[np.ndarray]] = [[] for _ in requests]
        wanted: list[tuple[int, list[str]]] = []
        centres: dict[int, np.ndarray] = {}
        for ji, request in enumerate(requests):
            try:
                self._check(request)
                if request.seed is None:
                    request.seed = secrets.randbits(63)
            except RequestError as exc:
                results[ji] = Answer.error(request.request_id, exc.code, exc.message)
                continue
            if self.latent_dim and request.latent is None:
                if request.like_texts:
                    wanted.append((ji, request.like_texts))
                elif (prior := self._theme_prior(request.keywords)) is not None:
                    centres[ji] = prior
        if wanted:
            flat = [t for _, texts in wanted for t in texts]
            lines = [split_lines(t) for t in flat]
            mus = self.encode_lines(lines, [None] * len(lines),
                                    default_forms=[requests[ji].form for ji, texts in wanted for _ in texts])
            k = 0
            for ji, texts in wanted:
                centres[ji] = mus[k:k + len(texts)].mean(axis=0)
                k += len(texts)
        for ji, request in enumerate(requests):
            if results[ji] is not None:
                continue
            for k in range(request.n):
                rng = np.random.default_rng([request.seed, k, 7])
                style = self.styles.get(request.style)
                if not self.latent_dim:
                    z = np.zeros(0, np.float32)
                elif request.latent is not None:
                    z = np.asarray(request.latent, np.float32)
                elif style is not None and not request.like_texts:
                    # The style's own poems' region of the latent space (with the theme's, if any).
                    z = style_prior(style, rng, centres.get(ji))
                elif ji in centres:
                    z = centres[ji] + LIKE_NOISE * rng.standard_normal(self.latent_dim)
                else:
                    z = float(request.latent_scale) * rng.standard_normal(self.latent_dim)
                out[ji].append(np.asarray(z, np.float32))
        return out, centres

    def _check(self, request: PoemRequest) -> None:
        """Refuse what only the model can know is wrong: the worker checked the request's shape
        (protocol.jobs.validate_generate) against this model's vocabulary and styles already, but a
        request built in-process (training, benchmarks, the CLI) has met no such check."""
        if request.form not in FORMS:
            raise RequestError(E_INVALID, f"the model writes {', '.join(FORMS)}, not {request.form!r}")
        if request.style and request.style not in self.styles.ids:
            raise RequestError(E_UNKNOWN_STYLE, f"no style {request.style!r}; this model has "
                               f"{', '.join(self.styles.ids) or 'none'}")
        if request.latent is not None and len(request.latent) != self.latent_dim:
            raise RequestError(E_INVALID, f"latent must have {self.latent_dim} numbers, not {len(request.latent)}")

    def _theme_prior(self, keywords: list[str]) -> np.ndarray | None:
        """Mean μ of the most popular poems holding every keyword, from the theme index
        (search/themes.py, a dict lookup: no corpus scan, no encoding); None without one."""
        # The loaders (model.generate.load_generator, `poembot generate`) attach the theme index
        # of the model's version as .themes; a Generator without one writes themes by their words only.
        themes = getattr(self, "themes", None)
        if not keywords or themes is None:
            return None
        prior = themes.prior(keywords)
        return prior if prior is not None and prior.shape[0] == self.latent_dim else None

    def encode_lines(self, lines: list[list[str]], forms: list[str | None],
                     default_forms: list[str] | None = None) -> np.ndarray:
        """Encoder μ [N, Z] of poems given as lines; form None means classify (else the default)."""
        if not self.latent_dim:
            return np.zeros((len(lines), 0), np.float32)
        seqs, form_ids = [], []
        for k, ls in enumerate(lines):
            name = forms[k] or classify(ls)
            if name not in FORM_INDEX:
                name = default_forms[k] if default_forms else "七绝"
            ids = self.vocab.encode_lines(ls)[: self.config.max_len]
            seqs.append(ids)
            form_ids.append(FORM_INDEX[name])
        out = []
        for start in range(0, len(seqs), self.max_rows):
            chunk = seqs[start:start + self.max_rows]
            B = _bucket(len(chunk))
            T = max(len(s) for s in chunk)
            arr = np.full((B, T), PAD, np.int32)
            arr[:, 0], arr[:, 1] = BOS, EOS     # padding rows: an empty poem
            fa = np.zeros(B, np.int32)
            for b, s in enumerate(chunk):
                arr[b] = PAD
                arr[b, :len(s)] = s
                fa[b] = form_ids[start + b]
            mu = self._encode_fn(tf.constant(arr), tf.constant(fa)).numpy()
            out.append(mu[:len(chunk)])
        return np.concatenate(out, axis=0)

    def decode_rows(self, rows: list[Row], attempts: list[int], with_logp: bool | None = None) -> Decoded:
        """Token ids [N, T] (T = the longest row), a relaxed flag and a mean log-prob per row (computed
        when with_logp, by default when some row is one of best-of-K's candidates, else zeros)."""
        return decode_rows(self.decoder, rows, attempts, with_logp, self.max_rows, self.latent_dim,
                           self.title_len, lambda row: FORM_INDEX[row.plan.form.name])

    def _title_ids(self, title: str) -> np.ndarray | None:
        """A request's title as the model reads it, or None (untitled, or a model without titles)."""
        if not self.title_len or not title:
            return None
        return encode_title(self.to_simplified(title), self.vocab, self.title_len)

    def _copied(self, row: Row, lines: list[str]) -> bool:
        if self.novelty is None:
            return False
        forced = row.plan.forced
        L = row.plan.form.line_len
        for i, line in enumerate(lines):
            span = forced[i * (L + 1): i * (L + 1) + L]
            if (span == FREE).any() and line in self.novelty:
                return True
        return False

    def _enforce_novelty(self, rows: list[Row], lines: list[list[str]], relaxed: np.ndarray) -> list[bool | None]:
        """Re-decode rows that copied a corpus line with fresh draws; lines and relaxed update in place."""
        if self.novelty is None:
            return [None] * len(rows)
        bad = [i for i, r in enumerate(rows) if r.novelty and self._copied(r, lines[i])]
        for attempt in range(1, NOVELTY_RETRIES + 1):
            if not bad:
                break
            redo = self.decode_rows([rows[i] for i in bad], attempts=[attempt] * len(bad), with_logp=False)
            for k, i in enumerate(bad):
                lines[i] = self.vocab.decode_lines(redo.tokens[k])
                relaxed[i] = redo.relaxed[k]
            bad = [i for i in bad if self._copied(rows[i], lines[i])]
        return [not self._copied(r, lines[i]) if r.novelty else None for i, r in enumerate(rows)]

    def verdict(self, lines: list[str]) -> dict[str, Any]:
        try:
            from verse import prosody
            v = prosody.check(lines)
            d = v.to_dict()
            return {"form_ok": bool(v.form_ok), "rhyme_ok": bool(v.rhyme_ok),
                    "tone_rate": float(v.tone_rate), "prosody": d}
        except ImportError:
            return {"form_ok": classify(lines) != OTHER, "rhyme_ok": None, "tone_rate": None}

    def _poem(self, request: PoemRequest, row: Row, lines: list[str], relaxed: bool, novel: bool | None,
              mu: np.ndarray | None, score: float) -> dict[str, Any]:
        verdict = self.verdict(lines)
        shown = [self.to_traditional(line) for line in lines] if request.traditional else lines
        out = {"text": poem_text(shown), "lines": shown, "form": row.plan.form.name,
               "seed": request.seed, "index": row.poem_index,
               "pattern": "平起" if row.plan.ping_first else "仄起",
               "rhyme_group": self._rhyme_group(lines, row) if request.rhyme == "pingshui" else None,
               "novel": novel, "relaxed": relaxed, **verdict,
               # No selection happens at K=1, and the decoder then skips the log-probabilities.
               "score": round(score, 4) if request.best_of > 1 else None, "best_of": request.best_of,
               "style": request.style,
               "title": self.to_traditional(request.title) if request.traditional else request.title,
               "mu": [] if mu is None else [round(float(x), MU_DECIMALS) for x in mu]}
        if request.traditional:
            out["lines_simplified"] = lines
        return out

    def _rhyme_group(self, lines: list[str], row: Row) -> str | None:
        form = row.plan.form
        member = np.ones(len(self.tables.groups), bool)
        for i in range(1, form.n_lines, 2):
            if i < len(lines) and lines[i]:
                member &= self.tables.groups_of(self.vocab.id(lines[i][-1]))
        hits = [g for g, ok in zip(self.tables.groups, member) if ok]
        return hits[0] if hits else None


def decode_rows(decoder: ConstrainedDecoder, rows: Sequence[Row], attempts: Sequence[int], with_logp: bool | None,
                max_rows: int, latent_dim: int, title_len: int, form_id: Callable[[Row], int]) -> Decoded:
    """Rows through decoder in chunks of at most max_rows (Generator.decode_rows, and the 词 writer's
    rows with their own form id); with_logp None: when some row is one of best-of-K's candidates."""
    if with_logp is None:
        with_logp = any(r.best_of > 1 for r in rows)
    T_all = max(r.plan.length for r in rows)
    toks = np.full((len(rows), T_all), PAD, np.int32)
    relaxed = np.zeros(len(rows), bool)
    logp = np.zeros(len(rows), np.float32)
    step_logp = np.zeros((len(rows), T_all), np.float32)
    # Rows of one length decode together, so a chunk of short forms does not run long forms' steps.
    order = sorted(range(len(rows)), key=lambda i: rows[i].plan.length)
    for start in range(0, len(order), max_rows):
        idx = order[start:start + max_rows]
        n = len(idx)
        B = _bucket(n)
        padded = [rows[i] for i in idx] + [rows[idx[-1]]] * (B - n)   # copies of a real row: satisfiable
        att = [attempts[i] for i in idx] + [0] * (B - n)
        arrays = pad_plans([r.plan for r in padded], decoder.n_groups)
        t, rel, lp, slp = decoder(
            with_logp=with_logp,
            z=np.stack([r.z for r in padded]).astype(np.float32).reshape(B, latent_dim),
            form=np.array([form_id(r) for r in padded], np.int32),
            tone_mode=np.array([TONE_MODES.index(r.tone_mode) for r in padded], np.int32),
            cap=np.array([r.cap for r in padded], np.int32),
            temperature=np.array([r.temperature for r in padded], np.float32),
            top_p=np.array([r.top_p for r in padded], np.float32),
            min_p=np.array([r.min_p for r in padded], np.float32),
            seeds=np.stack([row_seeds(r.seed, r.poem_index, a, r.candidate) for r, a in zip(padded, att)]),
            style=np.array([r.style for r in padded], np.int32),
            title=row_titles(padded, title_len), **arrays)
        toks[idx, :t.shape[1]] = t[:n]
        relaxed[idx] = rel[:n]
        logp[idx] = lp[:n]
        step_logp[idx, :slp.shape[1]] = slp[:n]
    return Decoded(toks, relaxed, logp, step_logp)


def row_titles(rows: Sequence[Row], title_len: int) -> np.ndarray:
    """The rows' title ids [B, title_len] ([B, 0] for a model without titles)."""
    out = np.full((len(rows), title_len), PAD, np.int32)
    for b, r in enumerate(rows):
        if title_len and r.title is not None:
            out[b] = r.title[:title_len]
    return out


def best_candidates(rows: Sequence[Any], scores: np.ndarray) -> list[int]:
    """Index of the best-scoring row of each (job_index, poem_index): best-of-K's pick, in row order."""
    best: dict[tuple[int, int], int] = {}
    for i, row in enumerate(rows):
        key = (row.job_index, row.poem_index)
        if key not in best or scores[i] > scores[best[key]]:
            best[key] = i
    return sorted(best.values())


def opening_form(length: int) -> int:
    """The form index a line of length opens as a 律诗 with (五律 for five characters or fewer, else
    七律): the poem model's context for a 上联 and its 下联."""
    return FORM_INDEX["五律" if length <= 5 else "七律"]


def _log_softmax(logits: tf.Tensor) -> np.ndarray:
    return (logits - tf.reduce_logsumexp(logits, axis=-1, keepdims=True)).numpy()


def _try_corpus() -> Any:
    try:
        from corpus.reader import Corpus
        return Corpus.load()
    except (FileNotFoundError, ValueError) as exc:
        log.info("no corpus for the novelty table: %s", exc)
        return None


def load_novelty(model_dir: Path, load_corpus: Callable[[], Any] = lambda: None) -> NoveltyTable | None:
    """The model's novelty table, else one derived from the built corpus (cached beside it), else
    None. load_corpus is called only when neither table exists: reading the corpus takes seconds."""
    path = Path(model_dir) / NOVELTY_FILE
    if path.exists():
        return NoveltyTable.load(path)
    from protocol.paths import corpus_dir
    cache = corpus_dir() / NOVELTY_FILE
    built = corpus_dir() / "poems.json.gz"
    if cache.exists() and built.exists() and cache.stat().st_mtime >= built.stat().st_mtime:
        return NoveltyTable.load(cache)
    corpus = load_corpus()
    if corpus is None:
        log.warning("novelty check off: no %s in %s and no built corpus", NOVELTY_FILE, model_dir)
        return None
    started = time.time()
    table = NoveltyTable.from_corpus(corpus)
    try:
        table.save(cache)
    except OSError:
        pass
    log.info("novelty table: %d corpus lines in %.1fs", len(table), time.time() - started)
    return table
