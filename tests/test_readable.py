"""Characters a reader can see: nothing outside GBK is written unless the user typed it."""
from __future__ import annotations

import numpy as np

from verse.vocab import SPECIALS, Vocab, in_gbk, readable_form


def test_in_gbk_tells_common_from_font_breaking_characters():
    assert all(in_gbk(c) for c in "春风明月鑪篘")
    assert not any(in_gbk(c) for c in "𬬻𥬠𫛶")


def test_readable_form_keeps_the_traditional_spelling_only_where_t2s_left_gbk():
    # 鑪 → 𬬻 by OpenCC t2s; 風 → 风 stays simplified.
    assert readable_form("风𬬻烟", "風鑪煙") == "风鑪烟"
    assert readable_form("春风", "春風") == "春风"
    # A character outside GBK in the source too stays as it is.
    assert readable_form("㶁", "㶁") == "㶁"
    # Unequal lengths (a phrase conversion) are not aligned: left alone.
    assert readable_form("𬬻", "鑪鑪") == "𬬻"


def test_readable_vocab_renames_in_place_and_keeps_ids():
    vocab = Vocab(list(SPECIALS) + list("春𬬻风𥬠㶁"))
    readable, renames = vocab.readable()
    assert len(readable) == len(vocab)
    assert renames == {"𬬻": "鑪", "𥬠": "篘"}
    assert readable.id("鑪") == vocab.id("𬬻") and readable.id("春") == vocab.id("春")
    assert readable.readable_mask() == [False] * len(SPECIALS) + [True, True, True, True, False]


def test_prosody_tables_forbid_unreadable_characters():
    from model.constraints import ProsodyTables

    vocab = Vocab(list(SPECIALS) + list("春㶁风"))
    tables = ProsodyTables.from_vocab(vocab)
    assert tables.writable.tolist() == [False] * len(SPECIALS) + [True, False, True]
    assert np.all(ProsodyTables(tone=tables.tone, rhyme=tables.rhyme, groups=tables.groups).writable)
