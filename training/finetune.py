"""Fine-tune (微调) a trained model on a chosen set of poems: continue from its weights at a low
learning rate, with early stopping on a held-out tenth of the set.

`poembot finetune --init model/pretrained --out runs/canon --canon` fine-tunes on the canon: the
唐诗三百首 and 千家诗 files of the chinese-poetry package plus the most popular regular poems by
the rank data. `--file poems.txt` (one poem a line) fine-tunes on any set. The result is a model
folder like the base one; `poembot evaluate` measures it, and it becomes the default only if it
wins (model card). Its fine-tune lines are saved beside it so evaluation counts copies of them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from corpus.reader import Corpus
from verse.forms import FORMS, OTHER, classify
from search.popularity import canon_poems, poem_lines, shared_rank
from verse.vocab import Vocab

CONFIG = Path(__file__).resolve().parent / "configs" / "finetune.json"
FINETUNE_LINES_FILE = "finetune_lines.txt"
FINETUNE_SET_FILE = "finetune_set.json"
MIN_POEMS = 50                     # fewer cannot hold out a tenth and still learn anything
DEFAULT_TOP_RANK = 1000           # the rank counts are noisy (shared/README.md): a few only


def popular_poems(corpus: Corpus, top: int) -> list[list[str]]:
    """The top regular-form poems of the corpus by the rank hit counts.

    The counts belong to an (author, title) pair, so a title an author used for dozens of poems
    (陆游's 夏日) lends each of them the hits of the famous one: the count is shared out among
    the poems with that pair before ranking.
    """
    rows = corpus.indices()
    shared = shared_rank(corpus, rows)
    order = sorted(range(len(rows)), key=lambda k: -shared[k])
    return [list(corpus.lines[rows[k]]) for k in order[:top]]


def file_poems(path: Path) -> list[list[str]]:
    """One poem a line, any punctuation between its lines; non-regular poems are an error."""
    import opencc

    t2s = opencc.OpenCC("t2s").convert
    poems, bad = [], []
    for k, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        lines = poem_lines(text, t2s)
        if classify(lines) != OTHER:
            poems.append(lines)
        else:
            bad.append(k)
    if len(bad) > len(poems) // 10:
        raise ValueError(f"{path}: {len(bad)} of {len(bad) + len(poems)} lines are not regular "
                         "poems (五绝 七绝 五律 七律, one poem a line)")
    if bad:
        print(f"[finetune] skipped {len(bad)} lines that are not regular poems (line "
              f"{', '.join(map(str, bad[:5]))}{' …' if len(bad) > 5 else ''})", file=sys.stderr)
    return poems


def split_set(poems: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Unique poems split 90/10 by a hash of their text (stable across runs)."""
    seen, train, held = set(), [], []
    for lines in poems:
        key = "/".join(lines)
        if key in seen:
            continue
        seen.add(key)
        bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 10
        (held if bucket == 0 else train).append(lines)
    return train, held


def finetune(init: str, out: str, canon: bool = True, top_rank: int = DEFAULT_TOP_RANK,
             file: str | None = None, config: str | None = None,
             max_steps: int | None = None, corpus: Corpus | None = None,
             corpus_root: Path | None = None) -> Path:
    """Fine-tune the model in init on the chosen set into out; returns out."""
    from training.train import TRAIN_CONFIG_FILE, TrainConfig, encode_by_form, train_phase

    init_dir, out_dir = Path(init), Path(out)
    poems: list[list[str]] = []
    if file:
        poems += file_poems(Path(file))
    if canon:
        from protocol.paths import corpus_root as default_root

        poems += canon_poems(corpus_root or default_root())
        if top_rank:
            poems += popular_poems(corpus or Corpus.load(), top_rank)
    train_set, held = split_set(poems)
    if len(train_set) + len(held) < MIN_POEMS or not held:
        raise ValueError(f"{len(train_set) + len(held)} regular poems: fine-tuning needs at least "
                         f"{MIN_POEMS}")
    vocab, _ = Vocab.load(init_dir / "vocab.json").readable()
    cfg = TrainConfig.load(config or CONFIG)
    cfg.model = {k: v for k, v in json.loads((init_dir / "config.json").read_text()).items()
                 if k not in ("vocab_size", "use_latent")}
    cfg.model.update(cfg.data.get("model_overrides", {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAIN_CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False))
    summary = {"init": str(init_dir), "canon": canon, "top_rank": top_rank if canon else 0,
               "file": file, "train_poems": len(train_set), "held_out_poems": len(held),
               "by_form": {f: sum(classify(p) == f for p in train_set + held) for f in FORMS}}
    (out_dir / FINETUNE_SET_FILE).write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    lines = sorted({line for p in train_set + held for line in p})
    (out_dir / FINETUNE_LINES_FILE).write_text("\n".join(lines) + "\n")
    print(f"[finetune] {len(train_set)} poems to learn, {len(held)} held out", file=sys.stderr)
    def encode(poems: list[list[str]]) -> dict:
        return encode_by_form(((classify(p), p) for p in poems), vocab)

    state = train_phase(cfg, True, out_dir, encode(train_set), encode(held), vocab,
                        resume=False, max_steps=max_steps,
                        max_minutes=float(cfg.train_value("max_minutes", 20)), init=init_dir)
    # The LM judge stays the base model's, so evaluations of base and fine-tune compare.
    if (init_dir / "lm").exists() and not (out_dir / "lm").exists():
        shutil.copytree(init_dir / "lm", out_dir / "lm")
    summary.update(best_step=state.get("best_step", state["step"]), steps=state["step"],
                   held_out_nll_per_char=state.get("val_nll_per_char"))
    (out_dir / FINETUNE_SET_FILE).write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return out_dir
