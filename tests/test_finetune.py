"""poembot finetune: a trained model continued on a chosen set, early-stopped on a held-out tenth."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from search.popularity import canon_poems  # noqa: E402
from training.finetune import FINETUNE_LINES_FILE, FINETUNE_SET_FILE, finetune, split_set  # noqa: E402
from training.train import CONFIG_DIR, VAL_LOG_FILE, synthetic_corpus  # noqa: E402


def poems_file(path: Path, n: int = 300, odd_lines: int = 0) -> Path:
    corpus = synthetic_corpus(n, seed=3)
    rows = ["，".join(corpus.lines[i]) + "。" for i in range(n)]
    rows += ["这不是一首诗"] * odd_lines
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def config(tmp_path: Path, **train) -> str:
    cfg = json.loads((CONFIG_DIR / "finetune.json").read_text())
    cfg["train"].update({"val_every_steps": 5, "patience": 2, "batch_size": 16, **train})
    path = tmp_path / "ft.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def val_rows(folder: Path) -> list[float]:
    with open(folder / VAL_LOG_FILE) as fh:
        return [float(r["val_nll_per_char"]) for r in csv.DictReader(fh)]


def test_finetune_learns_the_set_and_keeps_its_best_weights(tiny_run, tmp_path):
    out = finetune(str(tiny_run), str(tmp_path / "ft"), canon=False, file=str(poems_file(tmp_path / "p.txt")),
                   config=config(tmp_path, lr=0.005), max_steps=40)
    from model.vae import load_model

    load_model(out)
    summary = json.loads((out / FINETUNE_SET_FILE).read_text())
    assert summary["train_poems"] + summary["held_out_poems"] == 300
    assert 10 <= summary["held_out_poems"] <= 50
    vals = val_rows(out)
    assert vals[-1] <= min(vals[:-1])                   # the saved model is the best one seen
    assert vals[-1] < vals[0]                           # and it learned the held-out set
    assert (out / "lm" / "weights.npz").exists()        # the base model's judge comes along
    assert len((out / FINETUNE_LINES_FILE).read_text().split()) > 300


def test_finetune_stops_when_the_held_out_loss_stops_falling(tiny_run, tmp_path):
    out = finetune(str(tiny_run), str(tmp_path / "ft"), canon=False, file=str(poems_file(tmp_path / "p.txt")),
                   config=config(tmp_path, lr=1e-9), max_steps=200)
    state = json.loads((out / "train_state.json").read_text())
    # Nothing is learned at this rate, so validations differ only by the posterior sample: the
    # running best stops improving within a few and training ends far before max_steps.
    assert state["step"] < 200 and state["step"] % 5 == 0
    assert len(val_rows(out)) >= 3


def test_finetune_refuses_sets_too_small_or_not_poems(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="at least"):
        finetune(str(tiny_run), str(tmp_path / "a"), canon=False, file=str(poems_file(tmp_path / "s.txt", 20)))
    with pytest.raises(ValueError, match="not regular"):
        finetune(str(tiny_run), str(tmp_path / "b"), canon=False,
                 file=str(poems_file(tmp_path / "o.txt", 100, odd_lines=60)))


def test_split_set_is_stable_and_deduplicated():
    poems = [[f"{k}山水风月花"] * 4 for k in range(200)]
    train_a, held_a = split_set(poems + poems[:50])
    train_b, held_b = split_set(list(reversed(poems)))
    assert len(train_a) + len(held_a) == 200
    assert sorted(map(tuple, held_a)) == sorted(map(tuple, held_b))


def test_canon_files_are_read_as_regular_poems(tmp_path):
    folder = tmp_path / "package" / "dist" / "mengxue"
    folder.mkdir(parents=True)
    body = {"content": [{"type": "五言絕句", "content": [
        {"chapter": "登鸛雀樓", "author": "王之渙", "paragraphs": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]},
        {"chapter": "x", "author": "y", "paragraphs": ["不是诗。"]},
        {"chapter": "相思", "author": "王維", "paragraphs": [
            {"subchapter": "其一", "paragraphs": ["紅豆生南國，春來發幾枝。", "願君多采擷，此物最相思。"]}]}]}]}
    for name in ("tangshisanbaishou.json", "qianjiashi.json"):
        (folder / name).write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    poems = canon_poems(tmp_path)
    assert poems == [["白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"],
                     ["红豆生南国", "春来发几枝", "愿君多采撷", "此物最相思"]] * 2
