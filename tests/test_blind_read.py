"""The blind-reading sheet's selection ceiling: a picker's answer read, and the picked poems put
where generated_poems would have put its own (benchmarks/blind_read.py)."""
import random

import pytest

from benchmarks import blind_read as br

TITLES = ["秋夜", "送友人", "登楼", "山居", "寄远"]


def candidates_for(seed: int, per: int = 3) -> dict:
    """Candidates as `candidates` would write them for seed, with made-up poems."""
    rng = random.Random(seed)
    jobs = br.asked(TITLES, seed, rng, use_titles=True, n=per)
    return {"seed": seed, "model": "m", "groups": [
        {"form": job.form, "title": job.title,
         "poems": [[f"{job.title}{g}{j}甲", "乙丙丁戊"] for j in range(per)]}
        for g, job in enumerate(jobs)]}


def test_parse_picks_finds_the_array_in_prose():
    assert br.parse_picks("我的选择：\n[3, 7,1]\n总体偏弱。") == [3, 7, 1]
    with pytest.raises(SystemExit):
        br.parse_picks("都不好")


def test_picked_poems_follow_the_sheet_titles():
    seed = 5
    cands = candidates_for(seed)
    n = len(cands["groups"])
    picks = [1 + (g % 3) for g in range(n)]
    poems = br.picked_poems(cands, picks, TITLES, seed, random.Random(seed), use_titles=True)
    assert len(poems) == n == len(br.FORMS) * br.PER_FORM
    for poem, group, pick in zip(poems, cands["groups"], picks):
        assert poem["title"] == group["title"] and poem["form"] == group["form"]
        assert poem["lines"] == group["poems"][pick - 1] and poem["source"] == "generated"
    assert [p["form"] for p in poems] == [f for f in br.FORMS for _ in range(br.PER_FORM)]


def test_picked_poems_refuse_what_does_not_fit():
    cands = candidates_for(5)
    n = len(cands["groups"])
    with pytest.raises(SystemExit, match="seed"):          # another seed draws other titles
        br.picked_poems(cands, [1] * n, TITLES, 6, random.Random(6), use_titles=True)
    with pytest.raises(SystemExit, match="picks"):
        br.picked_poems(cands, [1] * (n - 1), TITLES, 5, random.Random(5), use_titles=True)
    with pytest.raises(SystemExit, match="not one of"):
        br.picked_poems(cands, [4] + [1] * (n - 1), TITLES, 5, random.Random(5), use_titles=True)
    shifted = random.Random(5)
    shifted.random()                                       # the rng not where make leaves it
    with pytest.raises(SystemExit, match="asks"):
        br.picked_poems(cands, [1] * n, TITLES, 5, shifted, use_titles=True)
