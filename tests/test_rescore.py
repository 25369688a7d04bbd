"""Best-of-K's rescoring and the decoder's new refusals (issue 21): attested pairs, line coherence,
no 「□」, no stutters, and a titled model that decodes with and without its title."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model.rescore import PAIRS_FILE, PairTable, line_gain, line_spans, unattested_share
from model.requests import PoemRequest


def test_pair_table_counts_pairs_inside_lines_and_round_trips(tmp_path) -> None:
    lines = [[1, 2, 3], [1, 2, 4], [5, 5], [5, 5]] + [[7, 7]] * 30
    table = PairTable.from_lines(lines, vocab_size=10, min_count=2)
    assert table.unattested([1, 2]) == (0, 1)           # seen twice
    assert table.unattested([2, 3]) == (1, 1)           # seen once: below min_count
    assert table.unattested([1, 2, 3, 9]) == (2, 3)
    doubles = table.doubles()
    assert doubles[7] and not doubles[5]                # 7 doubled 30 times, 5 only twice
    table.save(tmp_path / PAIRS_FILE)
    back = PairTable.load(tmp_path / PAIRS_FILE)
    assert np.array_equal(back.keys, table.keys) and back.vocab_size == 10
    assert np.array_equal(back.doubles(), doubles)
    assert unattested_share(table, [[1, 2], [2, 3]]) == 0.5 and unattested_share(None, [[2, 3]]) == 0.0


def test_line_gain_averages_the_free_characters_of_lines_after_the_first() -> None:
    context = np.array([[-1.0, -1.0], [-1.0, -2.0], [-1.0, -1.0]])
    alone = np.array([[-1.0, -1.0], [-3.0, -2.0], [-2.0, -5.0]])
    free = np.array([[True, True], [True, True], [True, False]])
    # line 2 gains 2 and 0, line 3 gains 1 (its second character was forced): (2 + 0 + 1) / 3
    assert line_gain(context, alone, free) == pytest.approx(1.0)
    assert line_spans(5, 2) == [(0, 5), (6, 11)]


def _favour(generator, char: str, logit: float = 50.0):
    """A copy of the generator's model whose output layer all but insists on char."""
    bias = generator.model.out.bias
    saved = bias.numpy().copy()
    boosted = saved.copy()
    boosted[generator.vocab.id(char)] += logit
    bias.assign(boosted)
    return saved


def test_the_decoder_never_writes_a_placeholder_nor_a_stutter(tiny_vocab, tiny_model_dir) -> None:
    from model.constraints import ProsodyTables
    from model.decode import Generator
    from verse.vocab import Vocab

    vocab = Vocab(list(tiny_vocab.chars) + ["□"])
    # A model over the tiny vocabulary plus 「□」, which it is made to want above everything.
    import keras
    from model.vae import VAEConfig, build_vae
    keras.utils.set_random_seed(7)
    model = build_vae(VAEConfig(vocab_size=len(vocab), emb_dim=16, enc_units=16, dec_units=32,
                                latent_dim=8, form_dim=4))
    config = model.config
    tables = ProsodyTables.from_vocab(vocab)
    generator = Generator(model, vocab, config, tables=tables)
    _favour(generator, "□")
    poems = generator.generate([PoemRequest(form="七绝", n=4, seed=3, tone_mode="off")])[0].poems
    assert poems and all("□" not in p["text"] for p in poems)

    # Now it wants one real character: without an attested doubling, never twice in a row.
    keras.utils.set_random_seed(7)
    model = build_vae(config)
    no_doubles = replace(tables, doubles=np.zeros(len(vocab), bool))
    generator = Generator(model, vocab, config, tables=no_doubles)
    char = next(c for c, ok in zip(vocab.chars, vocab.writable_mask()) if ok)
    _favour(generator, char)
    job = PoemRequest(form="七绝", n=4, seed=3, tone_mode="off", max_repeat=8)
    lines = [line for p in generator.generate([job])[0].poems for line in p["lines"]]
    assert any(char in line for line in lines)
    assert not any(char * 2 in line for line in lines)
    doubled = replace(tables, doubles=np.ones(len(vocab), bool))
    generator = Generator(model, vocab, config, tables=doubled)
    lines = [line for p in generator.generate([job])[0].poems for line in p["lines"]]
    assert any(char * 2 in line for line in lines)     # allowed, the model doubles it


def test_a_titled_model_decodes_with_and_without_a_title(tiny_vocab, tmp_path) -> None:
    import keras
    from model.decode import Generator
    from model.vae import VAEConfig, build_vae, load_model, save_model

    keras.utils.set_random_seed(11)
    config = VAEConfig(vocab_size=len(tiny_vocab), emb_dim=16, enc_units=16, dec_units=32,
                       latent_dim=8, form_dim=4, title_len=6, title_dim=8)
    model = build_vae(config)
    # Zero-initialised title layers: a fresh titled model writes what the untitled one would.
    assert not model.title_in.kernel.numpy().any() and not model.title_init.kernel.numpy().any()
    # Weights strong enough that the title must show in what is written.
    rng = np.random.default_rng(0)
    model.title_proj.kernel.assign(rng.normal(0, 8.0, size=model.title_proj.kernel.shape))
    model.title_in.kernel.assign(rng.normal(0, 8.0, size=model.title_in.kernel.shape))
    save_model(model, tiny_vocab, tmp_path / "m")
    loaded, _, loaded_config = load_model(tmp_path / "m")
    assert loaded_config.title_len == 6
    generator = Generator.load(tmp_path / "m", novelty=False)
    title = "".join(tiny_vocab.chars[10:13])
    jobs = [PoemRequest(form="五绝", seed=5, title=title), PoemRequest(form="五绝", seed=5)]
    titled, plain = (r.poems[0]["lines"] for r in generator.generate(jobs))
    assert titled != plain                               # the title reaches the decoder
    again = generator.generate([PoemRequest(form="五绝", seed=5, title=title)])[0].poems[0]["lines"]
    assert again == titled                               # and a seed still fixes the poem
