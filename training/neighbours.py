"""Nearest neighbours among held-out poems: by latent (posterior means) and by character-bigram TF-IDF,
the baseline a latent space must beat; how often a poem's neighbours share its form or its poet.
"""
from __future__ import annotations

import numpy as np

from corpus.reader import Corpus
from search.tfidf import TfidfIndex


def knn(sim: np.ndarray, k: int) -> np.ndarray:
    sim = sim.copy()
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def neighbour_rates(neigh: np.ndarray, labels: list[str]) -> float:
    lab = np.asarray(labels)
    return float(np.mean(lab[neigh] == lab[:, None]))


def tfidf_bigram_neighbours(texts: list[str], k: int) -> np.ndarray:
    """k nearest by cosine of character-bigram TF-IDF (the baseline a latent space must beat): each
    text is one document of search.tfidf's index, its bigrams across the whole text."""
    index = TfidfIndex([[text] for text in texts])
    return np.stack([index.nearest([text], k, exclude=[r]) for r, text in enumerate(texts)])


def latent_neighbours(mu: np.ndarray, k: int) -> np.ndarray:
    sq = np.sum(mu ** 2, axis=1)
    return knn(-(sq[:, None] + sq[None, :] - 2 * mu @ mu.T), k)


def neighbour_metrics(mu: np.ndarray, corpus: Corpus, rows: list[int]) -> dict:
    """Share of each test poem's 10 nearest (fewer in a small split) that share its form or its poet,
    by latent and by TF-IDF."""
    k_nn = min(10, max(1, len(rows) - 1))
    forms = [corpus.form[r] for r in rows]
    poets = [corpus.author[r] for r in rows]
    lat = latent_neighbours(mu, k_nn)
    base = tfidf_bigram_neighbours(["，".join(corpus.lines[r]) for r in rows], k_nn)
    return {
        "neighbour_same_form@10": neighbour_rates(lat, forms),
        "neighbour_same_poet@10": neighbour_rates(lat, poets),
        "tfidf_neighbour_same_form@10": neighbour_rates(base, forms),
        "tfidf_neighbour_same_poet@10": neighbour_rates(base, poets),
    }
