"""Couplet training data and training: the 颔联 and 颈联 of every 五律 and 七律, and 声律启蒙's pairs.

`poembot couplet train` runs train(): batches of one length (no padding), Adam, a held-out loss on
the val split's pairs, a checkpoint every few minutes and at the end of a wall-clock budget, the
best checkpoint (by held-out loss) kept as the model. Resumable from its checkpoint.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Iterable

import numpy as np

from verse.vocab import UNK, Vocab
from protocol.paths import corpus_root
from protocol.sampling import COUPLET_TEMPERATURE
from protocol.settings import PRETRAINED_DIR
from training.keep_best import KeepBest, lr_share

log = logging.getLogger(__name__)

COUPLET_FORMS = ("五律", "七律")
COUPLET_LINES = ((2, 3), (4, 5))          # 颔联 and 颈联, 0-based line indices
MENGXUE_FILE = "shenglvqimeng.json"        # 声律启蒙: pairs of 1 to 11 characters
# Trained on pairs of 1 to 11 characters: 声律启蒙's single characters (云对雨) are 对仗 in its
# purest form; users ask with 4 to 11 (protocol.jobs.COUPLET_LENGTHS).
LENGTHS = (1, 11)
STATE_FILE = "train_state.json"
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class Pair:
    first: str          # 上联
    second: str         # 下联
    split: str          # train | val | test (the poem's corpus split)
    source: str         # corpus | mengxue


def corpus_pairs(corpus) -> list[Pair]:
    """The two parallel couplets of every 五律 and 七律 (equal-length lines, distinct)."""
    out = []
    for i in corpus.indices(forms=COUPLET_FORMS):
        lines = corpus.lines[i]
        for a, b in COUPLET_LINES:
            first, second = lines[a], lines[b]
            if len(first) == len(second) and first != second:
                out.append(Pair(first, second, corpus.split[i], "corpus"))
    return out


def mengxue_pairs(root: Path | None = None) -> list[Pair]:
    """声律启蒙's pairs: "云对雨" clauses, adjacent clauses of one length, and 11-character pairs
    split at "；" (两鬓风霜，途次早行之客；一蓑烟雨，溪边晚钓之翁). Simplified; all for training."""
    from verse.script import to_simplified

    path = next((root or corpus_root()).rglob(MENGXUE_FILE), None)
    if path is None:
        log.warning("no %s under %s: training on the corpus couplets alone", MENGXUE_FILE, root)
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[Pair] = []
    for volume in data["content"]:
        for chapter in volume["content"]:
            for paragraph in chapter["paragraphs"]:
                out += _paragraph_pairs(to_simplified(paragraph))
    return out


def _paragraph_pairs(text: str) -> list[Pair]:
    out = []
    for sentence in (s for s in text.split("。") if s):
        if "；" in sentence:
            halves = [h.replace("，", "") for h in sentence.split("；")]
            if len(halves) == 2 and len(halves[0]) == len(halves[1]):
                out.append(Pair(halves[0], halves[1], "train", "mengxue"))
            continue
        clauses = sentence.split("，")
        plain = []
        for clause in clauses:
            if "对" in clause:
                a, _, b = clause.partition("对")
                if a and len(a) == len(b):
                    out.append(Pair(a, b, "train", "mengxue"))
            else:
                plain.append(clause)
        for a, b in zip(plain[::2], plain[1::2]):
            if a and len(a) == len(b):
                out.append(Pair(a, b, "train", "mengxue"))
    return out


def prefix_pairs(pairs: Iterable[Pair], length: int = 4, every: int = 8) -> list[Pair]:
    """The first `length` characters of every `every`-th 七言 training pair: a 七言 line is 4 + 3,
    so its head is a parallel phrase of its own (两个黄鹂 / 一行白鹭) — pairs of a length the
    corpus has no lines of."""
    seven = [p for p in pairs if len(p.first) == 7 and p.split == "train"]
    return [Pair(p.first[:length], p.second[:length], "train", "prefix") for p in seven[::every]
            if p.first[:length] != p.second[:length]]


def known(pair: Pair, vocab: Vocab) -> bool:
    return all(c in vocab for c in pair.first + pair.second)


def in_lengths(pair: Pair) -> bool:
    return LENGTHS[0] <= len(pair.first) <= LENGTHS[1]


@dataclass
class Buckets:
    """Pairs as int32 arrays, one (first, second) pair of [N, L] arrays per length L."""
    arrays: dict[int, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, pairs: Iterable[Pair], vocab: Vocab) -> "Buckets":
        grouped: dict[int, list[Pair]] = {}
        for p in pairs:
            grouped.setdefault(len(p.first), []).append(p)
        arrays = {}
        for length, ps in sorted(grouped.items()):
            a = np.array([[vocab.id(c) for c in p.first] for p in ps], np.int32)
            b = np.array([[vocab.id(c) for c in p.second] for p in ps], np.int32)
            arrays[length] = (a, b)
        return cls(arrays)

    def __len__(self) -> int:
        return sum(len(a) for a, _ in self.arrays.values())

    def batches(self, size: int, rng: np.random.Generator) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled batches, each of one length, lengths interleaved at random."""
        plan = []
        for length, (a, _) in self.arrays.items():
            order = rng.permutation(len(a))
            plan += [(length, order[s:s + size]) for s in range(0, len(a), size)]
        for k in rng.permutation(len(plan)):
            length, rows = plan[k]
            a, b = self.arrays[length]
            yield a[rows], b[rows]


@dataclass
class CoupletTrainConfig:
    batch_size: int = 128
    learning_rate: float = 2e-3
    # Cosine decay to this share of learning_rate over the run's wall-clock budget (1.0: constant).
    # A resumed run decays over its own budget, which is what a model that has found its basin wants.
    final_lr_share: float = 1.0
    clip_norm: float = 1.0
    max_minutes: float = 25.0            # wall-clock budget of this run (a resumed run has its own)
    max_steps: int | None = None
    eval_every: int = 300                # steps between held-out losses
    checkpoint_minutes: float = 3.0
    val_pairs: int = 1000                # held-out pairs the loss is measured on
    init: str | None = str(PRETRAINED_DIR)   # a poem model whose character embeddings start this one
    seed: int = 2027
    model: dict = field(default_factory=dict)   # CoupletConfig fields besides vocab_size
    tiny: int | None = None              # train on this many pairs only (the pipeline's smoke run)

    @classmethod
    def from_dict(cls, data: dict) -> "CoupletTrainConfig":
        known_fields = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known_fields})


def load_pairs(vocab: Vocab, corpus=None, root: Path | None = None) -> list[Pair]:
    """Every training and held-out pair whose characters the vocabulary has."""
    if corpus is None:
        from corpus.reader import Corpus
        corpus = Corpus.load()
    pairs = corpus_pairs(corpus) + mengxue_pairs(root)
    pairs += prefix_pairs(pairs)
    return [p for p in pairs if known(p, vocab) and in_lengths(p)]


def init_embeddings(model, vocab: Vocab, init_dir: str | Path) -> int:
    """Copy the poem model's character embeddings (matched by character); the number copied."""
    init_dir = Path(init_dir)
    init_vocab = Vocab.load(init_dir / "vocab.json")
    with np.load(init_dir / "weights.npz") as data:
        names = [str(n) for n in data["names"]]
        k = next(i for i, n in enumerate(names) if n.endswith("/embed/embeddings") or n == "embed/embeddings")
        table = data[f"w{k:03d}"].astype(np.float32)
    target = model.embed.embeddings.numpy()
    if table.shape[1] != target.shape[1]:
        raise ValueError(f"{init_dir}: embeddings of width {table.shape[1]}, the couplet model has {target.shape[1]}")
    copied = 0
    for i, c in enumerate(vocab.chars):
        j = init_vocab.index.get(c)
        if j is not None:
            target[i] = table[j]
            copied += 1
    model.embed.embeddings.assign(target)
    return copied


def train(config: CoupletTrainConfig, out: str | Path, resume: bool = False,
          pairs: list[Pair] | None = None, vocab: Vocab | None = None) -> Path:
    """Train into out (the model folder itself: config, vocab, float16 weights, metrics); returns out."""
    import keras
    import tensorflow as tf

    from model.couplet import (CoupletConfig, build_couplet_model, load_couplet_model, pair_nll,
                               save_couplet_model)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else {}
    if vocab is None:
        vocab = Vocab.load(Path(config.init or PRETRAINED_DIR) / "vocab.json")
    if pairs is None:
        pairs = load_pairs(vocab)
    train_pairs = [p for p in pairs if p.split == "train"]
    val_pairs = [p for p in pairs if p.split == "val"][:config.val_pairs]
    rng = np.random.default_rng(config.seed + int(state.get("step", 0)))
    if config.tiny:
        train_pairs = [train_pairs[i] for i in rng.choice(len(train_pairs), min(config.tiny, len(train_pairs)),
                                                          replace=False)]
    train_b, val_b = Buckets.of(train_pairs, vocab), Buckets.of(val_pairs, vocab)
    log.info("couplet training: %d training pairs, %d held-out", len(train_b), len(val_b))

    keras.utils.set_random_seed(config.seed)
    checkpoint = out / CHECKPOINT
    if resume and (checkpoint / "weights.npz").exists():
        model, vocab, _ = load_couplet_model(checkpoint)
        log.info("resumed at step %d", state.get("step", 0))
    else:
        model = build_couplet_model(CoupletConfig(vocab_size=len(vocab), **config.model))
        if config.init:
            log.info("embeddings of %d characters from %s", init_embeddings(model, vocab, config.init), config.init)
        state = {}
    optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=config.clip_norm)
    spec = [tf.TensorSpec([None, None], tf.int32)] * 2

    @tf.function(input_signature=spec)
    def train_step(first, second):
        with tf.GradientTape() as tape:
            loss = pair_nll(model({"first": first, "second": second}, training=True), second)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(input_signature=spec)
    def eval_step(first, second):
        return pair_nll(model({"first": first, "second": second}), second)

    def held_out() -> float:
        total = count = 0.0
        for length, (a, b) in val_b.arrays.items():
            for s in range(0, len(a), 512):
                n = len(a[s:s + 512])
                total += float(eval_step(a[s:s + 512], b[s:s + 512])) * n * length
                count += n * length
        return total / max(count, 1.0)

    def keep(val: float, step: int) -> None:
        save_couplet_model(model, vocab, out, metrics={"val_nll": val, "step": step, "train_pairs": len(train_b)})

    run = KeepBest(state, started, held_out, keep)
    deadline = started + 60 * config.max_minutes
    last_checkpoint = time.time()

    def save_state() -> None:
        run.save_state(state_path, asdict(config))

    done = False
    while not done:
        for a, b in train_b.batches(config.batch_size, rng):
            if config.final_lr_share < 1.0:
                optimizer.learning_rate.assign(config.learning_rate * lr_share(
                    (time.time() - started) / (60 * config.max_minutes), config.final_lr_share))
            run.losses.append(float(train_step(a, b)))
            run.step += 1
            if run.step % config.eval_every == 0:
                run.evaluate_and_keep()
            if time.time() - last_checkpoint > 60 * config.checkpoint_minutes:
                save_couplet_model(model, vocab, checkpoint)
                save_state()
                last_checkpoint = time.time()
            if time.time() > deadline or (config.max_steps is not None and run.step >= config.max_steps):
                done = True
                break
    if run.losses:
        run.evaluate_and_keep()
    save_couplet_model(model, vocab, checkpoint)
    save_state()
    return out


# --- evaluation -------------------------------------------------------------------------------------

SHEET_SIZE = 24
SHEET_INSTRUCTIONS = """以下是 {n} 副对联，顺序已打乱。每副的上联取自唐宋律诗的颔联或颈联；下联有的是原诗的下句，有的由计算机程序对出。
请仅凭阅读判断，不查任何资料。对每一副给出：
- label: "real"（原句）或 "generated"（程序所对）
- fluency: 1–5（1 = 不成句；3 = 通顺但平庸或有明显瑕疵；5 = 自然、精工）
- duizhang: 1–5（对仗的工整：1 = 不相对；5 = 字字工对）
请以 JSON 数组作答：[{{"n": 1, "label": "real", "fluency": 4, "duizhang": 4}}, ...]，然后用几句话说明你的判断依据。
"""


def held_out_pairs(pairs: list[Pair], n: int, seed: int, split: str = "test") -> list[Pair]:
    """n corpus pairs of the split (5 and 7 characters, no lost-character marks), in a seeded order."""
    rows = [p for p in pairs if p.split == split and p.source == "corpus" and "□" not in p.first + p.second]
    rng = np.random.default_rng(seed)
    return [rows[i] for i in rng.permutation(len(rows))[:n]]


def synthetic_firsts(pairs: list[Pair], per_length: int, seed: int) -> dict[int, list[str]]:
    """上联 of every length 4..11 for the rule checks: heads of held-out 七言 lines (4, 6), the lines
    (5, 7), and a 七言 line followed by the head of another (8..11) — shapes users type."""
    rng = np.random.default_rng(seed)
    sevens = [p.first for p in pairs if p.split == "test" and len(p.first) == 7]
    fives = [p.first for p in pairs if p.split == "test" and len(p.first) == 5]
    pick = lambda pool: pool[int(rng.integers(len(pool)))]          # noqa: E731
    out: dict[int, list[str]] = {}
    for length in range(4, 12):
        lines = []
        for _ in range(per_length):
            if length in (5, 7):
                lines.append(pick(fives if length == 5 else sevens))
            elif length < 7:
                lines.append(pick(sevens)[:length])
            else:
                lines.append(pick(sevens) + pick(sevens)[:length - 7])
        out[length] = lines
    return out


def rates(real: list[str], generated: list[str], firsts: list[str]) -> dict:
    """The couplet measures of one set of 下联 against their 上联."""
    from model.couplet_rules import definite_tone, tone_opposition, violations
    from model.word_classes import CLASS_OF, class_agreement

    both = opp = listed = same = ends = ends_ping = cls_real = cls_match = 0
    for first, second, truth in zip(firsts, generated, real):
        b, o = tone_opposition(first, second)
        both, opp = both + b, opp + o
        l_, s_ = class_agreement(first, second)
        listed, same = listed + l_, same + s_
        if definite_tone(first[-1]) == "仄":
            ends += 1
            ends_ping += definite_tone(second[-1]) == "平"
        for g, r in zip(second, truth):
            if CLASS_OF.get(r):
                cls_real += 1
                cls_match += CLASS_OF.get(g) == CLASS_OF[r]
    n = max(len(firsts), 1)
    return {"n": len(firsts),
            "length_ok": sum(len(a) == len(b) for a, b in zip(firsts, generated)) / n,
            "rules_ok": sum(not violations(a, b) for a, b in zip(firsts, generated)) / n,
            "tone_opposed": opp / max(both, 1),
            "ends_ping_after_ze": ends_ping / max(ends, 1),
            "class_same_as_first": same / max(listed, 1),
            "class_same_as_real": cls_match / max(cls_real, 1),
            "reuses_first": sum(bool(set(a) & set(b)) for a, b in zip(firsts, generated)) / n}


def evaluate(model_dir: str | Path, n: int = 400, k: int = 24, temperature: float = COUPLET_TEMPERATURE, seed: int = 11,
             theme_n: int = 24, per_length: int = 20, poems_dir: str | Path | None = PRETRAINED_DIR) -> dict:
    """Held-out figures of a couplet model: its 下联 and the real ones measured alike, the rules on
    every length 4..11, 春联 上联 written from theme words, speed. One JSON-able dict."""
    from model.couplet import SPRING_WORDS, CoupletWriter
    from model.requests import CoupletRequest

    writer = load_writer(model_dir, poems_dir)
    pairs = load_pairs(writer.vocab)
    test = held_out_pairs(pairs, n, seed)
    firsts, real = [p.first for p in test], [p.second for p in test]
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    drawn = writer.draw_many(firsts, k, temperature, rng)
    generated = []
    for first, d in zip(firsts, drawn):
        best = writer.best(first, d, 1)
        generated.append(best[0][0] if best else d.seconds[int(np.argmax(d.logp))])
    seconds = time.perf_counter() - started
    out: dict = {"model": str(model_dir), "k": k, "temperature": temperature, "seed": seed,
                 "generated": rates(real, generated, firsts), "real": rates(real, real, firsts),
                 "couplets_per_s": round(len(firsts) / seconds, 2),
                 "heldout_nll_real": float(-writer.likelihood(firsts, real).mean()),
                 "heldout_nll_generated": float(-writer.likelihood(firsts, generated).mean()),
                 "copies_corpus_line": sum(g in writer.novelty for g in generated) / len(generated)
                 if writer.novelty is not None else None,
                 "same_as_real": sum(g == r for g, r in zip(generated, real)) / len(generated),
                 "distinct": len(set(generated)) / len(generated)}
    lengths = {}
    for length, lines in synthetic_firsts(pairs, per_length, seed).items():
        ds = writer.draw_many(lines, k, temperature, rng)
        answers = [writer.best(f, d, 1) for f, d in zip(lines, ds)]
        ok = [bool(a) for a in answers]
        gen = [a[0][0] for a in answers if a]
        kept = [f for f, a in zip(lines, answers) if a]
        lengths[length] = {"answered": sum(ok) / len(ok), **{key: v for key, v in rates(kept, gen, kept).items()
                                                             if key in ("length_ok", "rules_ok", "reuses_first")}}
    out["lengths"] = lengths
    if theme_n and poems_dir is not None:
        out["spring"] = spring_figures(writer, poems_dir, theme_n, seed, SPRING_WORDS, CoupletRequest)
    out["examples"] = [{"first": f, "real": r, "generated": g} for f, r, g in
                       list(zip(firsts, real, generated))[:12]]
    return out


def load_writer(model_dir: str | Path, poems_dir: str | Path | None):
    """The couplet writer as the worker holds it: the poem model in poems_dir beside it (it
    rescores every 下联 and writes 春联 上联); without one, this model's likelihood alone."""
    from model.couplet import CoupletWriter
    from model.generate import load_generator

    return CoupletWriter.load(model_dir, poems=load_generator(poems_dir) if poems_dir is not None else None)


def spring_figures(writer, poems_dir, n: int, seed: int, words, request_cls) -> dict:
    """春联 from theme words: how often the written 上联 holds its theme and ends 仄, the rules, time."""
    from model.couplet_rules import definite_tone, violations
    from model.generate import load_generator

    if writer.poems is None:
        writer.poems = load_generator(poems_dir)
    results, started = [], time.perf_counter()
    for i in range(n):
        theme = [words[i % len(words)]]
        results.append((theme, writer.run_one(request_cls(theme=theme, seed=seed + i))))
    seconds = time.perf_counter() - started
    ok = [(theme, r.poems[0]) for theme, r in results if r.ok]
    return {"n": n, "answered": len(ok) / n, "seconds_each": round(seconds / n, 3),
            "first_holds_theme": sum(all(w in p["first"] for w in th) for th, p in ok) / max(len(ok), 1),
            "first_ends_ze": sum(definite_tone(p["first"][-1]) == "仄" for _, p in ok) / max(len(ok), 1),
            "rules_ok": sum(not violations(p["first"], p["second"]) for _, p in ok) / max(len(ok), 1),
            "examples": [f"{p['first']}，{p['second']}（{p['banner']}）" for _, p in ok[:8]]}


def blind_sheet(model_dir: str | Path, out: str | Path, seed: int = 25, size: int = SHEET_SIZE,
                k: int = 24, temperature: float = COUPLET_TEMPERATURE, poems_dir: str | Path | None = PRETRAINED_DIR
                ) -> tuple[Path, Path]:
    """A reading sheet of size held-out 上联, each with its real 下联 or a generated one (half each,
    shuffled, no labels), and its key. Returns (sheet, key)."""
    writer = load_writer(model_dir, poems_dir)
    pairs = load_pairs(writer.vocab)
    # Other pairs than the evaluation's (its seed), from the test split.
    chosen = held_out_pairs(pairs, size, seed)
    rng = np.random.default_rng(seed)
    labels = ["real"] * (size // 2) + ["generated"] * (size - size // 2)
    rng.shuffle(labels)
    items = []
    for pair, label in zip(chosen, labels):
        second = pair.second
        if label == "generated":
            best = writer.best(pair.first, writer.draw(pair.first, k, temperature, rng), 1)
            second = best[0][0]
        items.append({"first": pair.first, "second": second, "label": label, "real_second": pair.second})
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sheet, key = out / "sheet.md", out / "key.json"
    lines = [SHEET_INSTRUCTIONS.format(n=len(items))]
    lines += [f"{n}. {item['first']}，{item['second']}。" for n, item in enumerate(items, 1)]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The shape benchmarks/blind_read.py scores: each item's source is real or generated.
    key.write_text(json.dumps({"seed": seed, "model": str(model_dir), "poems_model": str(poems_dir),
                               "items": [{"n": n, "source": item.pop("label"), **item}
                                         for n, item in enumerate(items, 1)]},
                              ensure_ascii=False, indent=1), encoding="utf-8")
    return sheet, key


def summary(figures: dict) -> str:
    """One line of the evaluation's figures."""
    g, r = figures["generated"], figures["real"]
    line = (f"couplets: rules {g['rules_ok']:.1%}, length {g['length_ok']:.1%}, tones opposed "
            f"{g['tone_opposed']:.1%} (real {r['tone_opposed']:.1%}), ends 平 after 仄 "
            f"{g['ends_ping_after_ze']:.1%} (real {r['ends_ping_after_ze']:.1%}), word class as the 上联's "
            f"{g['class_same_as_first']:.1%} (real {r['class_same_as_first']:.1%}), as the real 下联's "
            f"{g['class_same_as_real']:.1%}; NLL real {figures['heldout_nll_real']:.2f}; "
            f"{figures['couplets_per_s']} couplets/s")
    if "spring" in figures:
        s = figures["spring"]
        line += f"; 春联 上联 hold their theme {s['first_holds_theme']:.0%}, end 仄 {s['first_ends_ze']:.0%}"
    return line
