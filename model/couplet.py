"""The couplet model (对联): given a 上联, write its 下联 position by position.

A BiGRU reads the 上联; a GRU decoder writes the 下联, its input at step i being the previous
下联 character, the 上联 character at position i, the BiGRU's state there and the whole line's
encoding — so 对仗 (天 against 地, 风 against 雨, a number against a number) is learnt where it
happens. The output layer is tied to the character embeddings, which start from the shipped poem
model's. CoupletWriter serves CoupletRequests (model.requests): K constrained samples (model/couplet_rules.py, hard),
rescored (CoupletWriter.score) by this model's likelihood, the poem model's, and the phrases the
corpus attests; corpus copies dropped, the best distinct n returned.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from model.banners import choose_banner
from model.constraints import NoveltyTable
from model.folder import CONFIG_FILE, SavedConfig, load_folder, save_folder
from model.rescore import unattested_share
from model.couplet_rules import PING, ZE, plan_couplet, violations
from verse.vocab import BOS, N_SPECIALS, UNK, Vocab
from model.requests import E_IMPOSSIBLE, E_INTERNAL, E_NO_MODEL, Answer, CoupletRequest, PoemRequest, RequestError
from protocol.settings import PACKAGES_DIR
from verse import prosody

log = logging.getLogger(__name__)

COUPLET_DIR = PACKAGES_DIR / "model" / "couplet"    # the shipped model
SUBDIR = "couplet"                                   # a poem model's own couplet model: <model dir>/couplet
MIN_P = 0.02            # a candidate character at least this share of the best one's probability
RESAMPLES = 2           # extra rounds when every candidate copied a corpus line
# The poem model beside this one, in nats per character beside this model's log-probabilities.
# Blind readers said our 下联 matched the 上联's parts of speech but not its sense, drifted from its
# subject, or padded (docs/blind-reading.md). The poem model has read whole poems, not pairs: its
# probability of the 下联 after the 上联 favours a line that follows in sense. Each character is
# drawn from this model's log-probabilities plus FUSION_WEIGHT times the poem model's (shallow
# fusion), and the K candidates are ranked by this model's mean plus POEM_WEIGHT times the poem
# model's, less UNATTESTED_WEIGHT times the share of character pairs no poet wrote (a phrase that
# does not parse). At 1.0 and 1.0 readers rated the 下联 more fluent (3.1 against 2.6) but less
# parallel (对仗 2.7 against 2.9) and still recognised 31 of 36; on 120 held-out 上联 0.5 and 0.5 keep
# the word classes of the 上联 as often as this model alone (42% against 39%; the poets 34%) while
# the poem model still rates the 下联 far above this model's own (−3.32 against −3.67 a character).
FUSION_WEIGHT = 0.5
POEM_WEIGHT = 0.5
UNATTESTED_WEIGHT = 3.0
SPRING_POEMS = 4        # 七律s the poem model writes for one 春联's 上联 (one line of them is kept)
# Words a 春联 上联 is written around when the request names none (one per request, by its seed).
SPRING_WORDS = ("春", "福", "春风", "新春", "瑞雪", "梅", "东风", "燕", "春色", "岁")


@dataclass
class CoupletConfig(SavedConfig):
    vocab_size: int
    emb_dim: int = 192              # the shipped poem model's, so its embeddings can start this one
    enc_units: int = 128            # per direction of the BiGRU over the 上联
    dec_units: int = 256
    dropout: float = 0.1            # on the decoder's input while training


class CoupletModel(keras.Model):
    """上联 ids [B, L] and 下联 ids [B, L] → logits [B, L, V] (teacher forced); see the module docstring."""

    def __init__(self, config: CoupletConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c = self.config = config
        self.embed = layers.Embedding(c.vocab_size, c.emb_dim, name="embed")
        self.encoder = layers.Bidirectional(layers.GRU(c.enc_units, return_sequences=True),
                                            merge_mode="concat", name="encoder")
        self.init_state = layers.Dense(c.dec_units, activation="tanh", name="init_state")
        self.decoder = layers.GRU(c.dec_units, return_sequences=True, return_state=True, name="decoder")
        self.drop = layers.Dropout(c.dropout, name="dropout")
        self.to_emb = layers.Dense(c.emb_dim, name="to_emb")
        self.out_bias = self.add_weight(shape=(c.vocab_size,), initializer="zeros", name="out_bias")

    def encode(self, first: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(上联 embeddings [B, L, E], BiGRU states [B, L, 2U], the line's encoding [B, 2U])."""
        x = self.embed(tf.cast(first, tf.int32))
        h = self.encoder(x)
        return x, h, tf.reduce_mean(h, axis=1)

    def logits(self, hidden: tf.Tensor) -> tf.Tensor:
        """Output logits from decoder states, through the (tied) character embeddings."""
        e = self.to_emb(hidden)
        return tf.matmul(e, self.embed.embeddings, transpose_b=True) + self.out_bias

    def call(self, inputs: dict, training: bool = False) -> tf.Tensor:
        first, second = tf.cast(inputs["first"], tf.int32), tf.cast(inputs["second"], tf.int32)
        x, h, g = self.encode(first)
        prev = tf.concat([tf.fill([tf.shape(second)[0], 1], BOS), second[:, :-1]], axis=1)
        length = tf.shape(first)[1]
        step_in = tf.concat([self.embed(prev), x, h, tf.tile(g[:, None, :], [1, length, 1])], axis=-1)
        step_in = self.drop(step_in, training=training)
        seq, _ = self.decoder(step_in, initial_state=self.init_state(g), training=training)
        return self.logits(seq)

    def step(self, prev: tf.Tensor, x_i: tf.Tensor, h_i: tf.Tensor, g: tf.Tensor, state: tf.Tensor
             ) -> tuple[tf.Tensor, tf.Tensor]:
        """One decoding step: (logits [B, V], new state [B, H])."""
        step_in = tf.concat([self.embed(prev), x_i, h_i, g], axis=-1)
        out, _ = self.decoder.cell(step_in, [state])
        return self.logits(out), out


def build_couplet_model(config: CoupletConfig) -> CoupletModel:
    model = CoupletModel(config)
    ids = np.full((2, 5), N_SPECIALS, np.int32)
    model({"first": ids, "second": ids})
    return model


def pair_nll(logits: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
    """Mean negative log-likelihood per 下联 character over a batch of one length."""
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(second, tf.int32),
                                                         logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(nll)


# --- one folder per trained model (model/vae.py's pattern) ------------------------------------------

def save_couplet_model(model: CoupletModel, vocab: Vocab, directory: str | Path, dtype: str = "float16",
                       metrics: dict | None = None) -> Path:
    """config.json, vocab.json, weights.npz (float16: half the size) and metrics.json in directory."""
    return save_folder(model, model.config.to_dict(), vocab, directory, dtype, metrics)


def load_couplet_model(directory: str | Path) -> tuple[CoupletModel, Vocab, CoupletConfig]:
    """The (model, vocab, config) saved by save_couplet_model; weights come back as float32."""
    return load_folder(directory, CoupletConfig, build_couplet_model)


def find_couplet_dir(model_dir: str | Path | None) -> Path | None:
    """The couplet model a worker serves: <model dir>/couplet beside the poem model, else the shipped one."""
    for candidate in ([Path(model_dir) / SUBDIR] if model_dir else []) + [COUPLET_DIR]:
        if (candidate / CONFIG_FILE).exists():
            return candidate
    return None


# --- constrained sampling -------------------------------------------------------------------------

@dataclass
class Drawn:
    """Candidates for one 上联: 下联 texts and their mean log-likelihood per character; drawn fused,
    the poem model's mean log-probability of each too (the steps already gave it), else None."""
    seconds: list[str]
    logp: np.ndarray
    poem_logp: np.ndarray | None = None


class CoupletWriter:
    """A loaded couplet model with its tables: CoupletRequests in, Answers out.

    poems: the worker's poem Generator, which writes the 上联 of a 春联 from theme words (a 七绝
    line with the words forced, hard 平仄); None refuses theme requests."""

    def __init__(self, model: CoupletModel, vocab: Vocab, novelty: NoveltyTable | None = None,
                 poems: Any = None) -> None:
        self.model, self.vocab, self.novelty, self.poems = model, vocab, novelty, poems
        tone = prosody.tone_mask(vocab)
        writable = np.array(vocab.writable_mask()) & (np.arange(len(vocab)) >= N_SPECIALS)
        # Allowed ids per required tone: none, 平 only, 仄 only (a character read both ways proves nothing).
        self.allowed = {None: writable, PING: writable & (tone == 1), ZE: writable & (tone == 2)}
        self._encode = tf.function(model.encode, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        e, h, d = model.config.emb_dim, 2 * model.config.enc_units, model.config.dec_units
        self._step = tf.function(model.step, input_signature=[
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, e], tf.float32),
            tf.TensorSpec([None, h], tf.float32), tf.TensorSpec([None, h], tf.float32),
            tf.TensorSpec([None, d], tf.float32)])
        self._init = tf.function(model.init_state, input_signature=[tf.TensorSpec([None, h], tf.float32)])

    @classmethod
    def load(cls, directory: str | Path, novelty: bool = True, poems: Any = None) -> "CoupletWriter":
        """The couplet model in directory; with novelty, the corpus line table (as the poem model's)."""
        model, vocab, _ = load_couplet_model(directory)
        table = None
        if novelty:
            from model.decode import _try_corpus, load_novelty
            table = load_novelty(Path(directory), _try_corpus)
        return cls(model, vocab, table, poems)

    # --- sampling ---------------------------------------------------------------------------------
    def draw(self, first: str, k: int, temperature: float, rng: np.random.Generator) -> Drawn:
        """k 下联 for first, each keeping every rule of its plan."""
        return self.draw_many([first], k, temperature, rng)[0]

    def draw_many(self, firsts: Sequence[str], k: int, temperature: float, rng: np.random.Generator
                  ) -> list[Drawn]:
        """k 下联 for each of firsts (one batch per length)."""
        out: list[Drawn | None] = [None] * len(firsts)
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(firsts):
            by_len.setdefault(len(f), []).append(i)
        for idx in by_len.values():
            drawn = self._draw_batch([firsts[i] for i in idx], k, temperature, rng)
            for i, d in zip(idx, drawn):
                out[i] = d
        return [d for d in out if d is not None]

    def _draw_batch(self, firsts: list[str], k: int, temperature: float, rng: np.random.Generator
                    ) -> list[Drawn]:
        length, n_rows = len(firsts[0]), len(firsts) * k
        plans = [plan_couplet(f) for f in firsts for _ in range(k)]
        ids = np.array([[self.vocab.id(c) for c in p.first] for p in plans], np.int32)
        x, h, g = self._encode(tf.constant(ids))
        state = self._init(g)
        # No 上联 character anywhere in the 下联: block them (and written ones) row by row.
        blocked = np.zeros((n_rows, len(self.vocab)), bool)
        for r, p in enumerate(plans):
            blocked[r, [self.vocab.id(c) for c in set(p.first)]] = True
        blocked[:, UNK] = True
        tokens = np.zeros((n_rows, length), np.int32)
        logp = np.zeros(n_rows, np.float64)
        prev = np.full(n_rows, BOS, np.int32)
        fused = self._fusing()
        poem_logp = np.zeros(n_rows, np.float64) if fused else None
        if fused:
            poem_lp, carry = self.poems.start_after([p.first for p in plans])
        for i in range(length):
            logits, state = self._step(tf.constant(prev), x[:, i], h[:, i], g, state)
            logits = logits.numpy().astype(np.float64)
            raw = logits - _logsumexp(logits)
            if fused:
                logits = raw + FUSION_WEIGHT * poem_lp
            chosen = np.empty(n_rows, np.int32)
            for r, p in enumerate(plans):
                j = p.mirror[i]
                if j is not None:
                    chosen[r] = tokens[r, j]            # 叠字: the 下联 repeats where the 上联 does
                    continue
                allowed = self.allowed[p.want[i]] & ~blocked[r]
                chosen[r] = _sample(logits[r], allowed, temperature, rng)
            tokens[:, i] = chosen
            logp += raw[np.arange(n_rows), chosen]
            blocked[np.arange(n_rows), chosen] = True   # no other repeat in the 下联
            prev = chosen
            if fused:
                poem_logp += poem_lp[np.arange(n_rows), chosen]
                if i + 1 < length:
                    poem_lp, carry = self.poems.step_after(chosen, carry)
        seconds = ["".join(self.vocab.chars[t] for t in row) for row in tokens]
        logp /= max(length, 1)
        if poem_logp is not None:
            poem_logp /= max(length, 1)
        return [Drawn(seconds[b * k:(b + 1) * k], logp[b * k:(b + 1) * k],
                      None if poem_logp is None else poem_logp[b * k:(b + 1) * k]) for b in range(len(firsts))]

    def _fusing(self) -> bool:
        """Whether sampling fuses the poem model in: it has the steps and reads the same characters."""
        return bool(FUSION_WEIGHT and hasattr(self.poems, "start_after")
                    and getattr(self.poems, "vocab", None) is not None
                    and self.poems.vocab.chars == self.vocab.chars)

    def score(self, first: str, drawn: Drawn) -> np.ndarray:
        """Each candidate's rescoring score: its mean log-probability here, plus the poem model's
        (when the writer has one), less the share of its character pairs the corpus never writes."""
        scores = drawn.logp.astype(np.float64).copy()
        if self.poems is None or not drawn.seconds:
            return scores
        if POEM_WEIGHT and drawn.poem_logp is not None:
            scores += POEM_WEIGHT * drawn.poem_logp
        elif POEM_WEIGHT and hasattr(self.poems, "pair_logp"):
            scores += POEM_WEIGHT * self.poems.pair_logp([first] * len(drawn.seconds), drawn.seconds)
        pairs = getattr(self.poems, "pairs", None)
        if UNATTESTED_WEIGHT and pairs is not None:
            scores -= UNATTESTED_WEIGHT * np.array(
                [unattested_share(pairs, [[self.vocab.id(c) for c in second]]) for second in drawn.seconds])
        return scores

    def best(self, first: str, drawn: Drawn, n: int) -> list[tuple[str, float, float]]:
        """The n best-scored distinct candidates that copy no corpus line and keep every rule, each
        as (下联, its mean log-probability under this model, its score), the best first."""
        out, seen = [], set()
        scores = self.score(first, drawn)
        for i in np.argsort(-scores, kind="stable"):
            second = drawn.seconds[i]
            if second in seen or (self.novelty is not None and second in self.novelty):
                continue
            if violations(first, second):        # cannot happen: the sampler keeps the plan
                log.error("couplet rule broken: %s / %s: %s", first, second, violations(first, second))
                continue
            seen.add(second)
            out.append((second, float(drawn.logp[i]), float(scores[i])))
            if len(out) == n:
                break
        return out

    def likelihood(self, firsts: Sequence[str], seconds: Sequence[str]) -> np.ndarray:
        """Mean log-likelihood per character of each 下联 given its 上联 (equal lengths per pair)."""
        out = np.zeros(len(firsts))
        by_len: dict[int, list[int]] = {}
        for i, f in enumerate(firsts):
            by_len.setdefault(len(f), []).append(i)
        for idx in by_len.values():
            a = np.array([[self.vocab.id(c) for c in firsts[i]] for i in idx], np.int32)
            b = np.array([[self.vocab.id(c) for c in seconds[i]] for i in idx], np.int32)
            logits = self.model({"first": a, "second": b}).numpy().astype(np.float64)
            lp = logits - _logsumexp(logits)
            picked = np.take_along_axis(lp, b[:, :, None], axis=2)[:, :, 0]
            out[idx] = picked.mean(axis=1)
        return out

    # --- requests ---------------------------------------------------------------------------------
    def run(self, requests: Sequence[CoupletRequest]) -> list[Answer]:
        """An Answer per request, in order; a refused or failed request gets an error Answer."""
        return [self.run_one(request) for request in requests]

    def run_one(self, request: CoupletRequest) -> Answer:
        """The request's 下联 (the worker has checked and simplified its 上联 and theme words)."""
        try:
            seed = request.seed if request.seed is not None else secrets.randbelow(2**62)
            rng = np.random.default_rng(seed)
            first = request.first or self.spring_first(request, seed)
            picked: list[tuple[str, float, float]] = []
            for _ in range(1 + RESAMPLES):
                picked = self.best(first, self.draw(first, request.best_of, request.temperature, rng), request.n)
                if picked:
                    break
            if not picked:
                raise RequestError(E_IMPOSSIBLE, f"every 下联 found for {first} copies a corpus line")
        except RequestError as exc:
            return Answer.error(request.request_id, exc.code, exc.message, kind="couplet")
        except Exception:                           # noqa: BLE001 - reported to the user, logged here
            log.exception("couplet request %s failed", request.request_id)
            return Answer.error(request.request_id, E_INTERNAL, "the couplet could not be written", kind="couplet")
        plan = plan_couplet(first)
        banner = choose_banner([first, picked[0][0]], request.theme, seed)
        poems = []
        for k, (second, logp, score) in enumerate(picked):
            poems.append({"first": first, "second": second, "lines": [first, second],
                          "text": f"{first}，{second}。", "banner": banner, "logp": round(logp, 4),
                          "score": round(score, 4),
                          "notes": list(plan.notes), "written_first": not request.first,
                          "seed": seed, "index": k, "form": "对联"})
        return Answer(request_id=request.request_id, ok=True, poems=poems, kind="couplet")

    def spring_first(self, request: CoupletRequest, seed: int) -> str:
        """A 上联 for a 春联: a line of 七绝s the poem model writes around the theme words, ending 仄."""
        if self.poems is None:
            raise RequestError(E_NO_MODEL, "no poem model to write a 上联 from theme words")
        vocab = getattr(self.poems, "vocab", None)
        writable = [w for w in SPRING_WORDS if vocab is None or all(c in vocab for c in w)] or ["春"]
        words = list(request.theme) or [writable[seed % len(writable)]]
        # 七律s: a theme word lands on one of their lines ending 仄 (3, 5, 7, often 1) far more often
        # than in a 七绝 (line 3, sometimes 1), and lines 3 and 5 open its parallel couplets.
        poems = PoemRequest(form="七律", keywords=words, n=SPRING_POEMS, tone_mode="hard", seed=seed % 2**62,
                            temperature=request.temperature)
        answer = self.poems.generate([poems])[0]
        if not answer.ok:
            raise RequestError(answer.error_code or E_INTERNAL, answer.error_message or "no 上联")
        return pick_first([p["lines"] for p in answer.poems], words)


def pick_first(poems: Sequence[Sequence[str]], words: Sequence[str]) -> str:
    """The line of poems that best opens a 春联: ending 仄, holding the theme words, opening a
    parallel couplet (a 律诗's line 3 or 5), from an earlier poem (the generator's better ones)."""
    wanted = set("".join(words))

    def score(line: str, k: int, i: int) -> tuple:
        ends_ze = prosody.tones(line[-1]) == frozenset({ZE})
        has_words = sum(w in line for w in words)
        return (ends_ze, has_words, len(wanted & set(line)), i in (2, 4), -k)

    candidates = [(line, k, i) for k, poem in enumerate(poems) for i, line in enumerate(poem) if line]
    return max(candidates, key=lambda c: score(*c))[0]


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _sample(logits: np.ndarray, allowed: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """One id among allowed (never empty: each tone class has thousands of characters), from the
    model's distribution at temperature, cut below MIN_P of the best."""
    scores = np.where(allowed, logits / max(temperature, 1e-3), -np.inf)
    top = scores.max()
    keep = scores >= top + np.log(MIN_P)
    p = np.where(keep, np.exp(scores - top), 0.0)
    return int(rng.choice(len(p), p=p / p.sum()))
