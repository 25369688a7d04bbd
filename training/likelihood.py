"""The likelihoods of held-out poems under the VAE and its LM baseline (ELBO, importance-weighted bound,
LM NLL), the posterior each poem gets, and the mutual information of poems and latents.
"""
from __future__ import annotations

import math

import numpy as np


def likelihoods(model, lm, data, iw_rows: set[int], k: int, batch: int = 128,
                 titles: dict[int, np.ndarray] | None = None) -> dict:
    """ELBO, IW bound and LM NLL, plus posterior means and variances per test row. Every figure
    is the untitled likelihood (comparable with models trained before titles); with titles (a
    titled model: {form: [N, title_len]} row for row with data) the IW bound is also taken
    given each poem's title, as "iw_titled"."""
    import tensorflow as tf

    from model.vae import kl_per_dim, log_likelihood_iw, token_nll

    @tf.function(reduce_retracing=True)
    def elbo_terms(tokens, form):
        out = model({"tokens": tokens, "form": form}, training=False)
        rec = token_nll(out["logits"], tokens[:, 1:])
        return rec, kl_per_dim(out["mu"], out["logvar"]), out["mu"], out["logvar"]

    @tf.function(reduce_retracing=True)
    def iw(tokens, form):
        return log_likelihood_iw(model, {"tokens": tokens, "form": form}, k=k)

    @tf.function(reduce_retracing=True)
    def iw_titled(tokens, form, title):
        return log_likelihood_iw(model, {"tokens": tokens, "form": form, "title": title}, k=k)

    @tf.function(reduce_retracing=True)
    def lm_nll(tokens, form):
        return token_nll(lm({"tokens": tokens, "form": form}, training=False)["logits"],
                         tokens[:, 1:])

    out = {"rec": [], "kl_d": [], "mu": [], "logvar": [], "chars": [], "rows": [], "form": [],
           "iw": [], "iw_chars": [], "lm_iw": [], "lm": [], "iw_titled": []}
    iw_batch = max(1, 1024 // k)
    for form, (tokens, rows) in data.items():
        for s in range(0, len(rows), batch):
            tok = tf.constant(tokens[s:s + batch])
            fm = tf.constant(np.full(tok.shape[0], form, np.int32))
            rec, kl_d, mu, logvar = elbo_terms(tok, fm)
            out["rec"].append(rec.numpy())
            out["kl_d"].append(kl_d.numpy())
            out["mu"].append(mu.numpy())
            out["logvar"].append(logvar.numpy())
            out["chars"].append(np.full(tok.shape[0], tok.shape[1] - 1, np.float64))
            out["rows"].extend(rows[s:s + batch])
            out["form"].extend([form] * tok.shape[0])
            if lm is not None:
                out["lm"].append(lm_nll(tok, fm).numpy())
        picked = [j for j, r in enumerate(rows) if r in iw_rows]
        for s in range(0, len(picked), iw_batch):
            idx = picked[s:s + iw_batch]
            tok = tf.constant(tokens[idx])
            fm = tf.constant(np.full(len(idx), form, np.int32))
            out["iw"].append(-iw(tok, fm).numpy())
            if titles is not None:
                out["iw_titled"].append(-iw_titled(tok, fm, tf.constant(titles[form][idx])).numpy())
            out["iw_chars"].append(np.full(len(idx), tokens.shape[1] - 1, np.float64))
            if lm is not None:
                out["lm_iw"].append(lm_nll(tok, fm).numpy())
    cat = {k_: (np.concatenate(v) if v and isinstance(v[0], np.ndarray) else np.asarray(v))
           for k_, v in out.items()}
    return cat


def mutual_info(mu: np.ndarray, logvar: np.ndarray, seed: int = 0) -> float:
    """I(x; z) under q with the aggregate posterior estimated on these poems (Hoffman & Johnson
    2016; as computed by He et al. 2019). Bounded above by log N."""
    n, d = mu.shape
    rng = np.random.default_rng(seed)
    var = np.exp(logvar)
    neg_entropy = np.mean(-0.5 * d * math.log(2 * math.pi) - 0.5 * np.sum(1 + logvar, axis=1))
    z = mu + np.sqrt(var) * rng.standard_normal(mu.shape)
    log_qz = np.empty(n)
    const = -0.5 * d * math.log(2 * math.pi) - 0.5 * np.sum(logvar, axis=1)   # [N] over j
    for s in range(0, n, 256):
        diff = z[s:s + 256, None, :] - mu[None, :, :]                          # [b, N, D]
        log_dens = const[None, :] - 0.5 * np.sum(diff ** 2 / var[None, :, :], axis=2)
        m = log_dens.max(axis=1, keepdims=True)
        log_qz[s:s + 256] = (m[:, 0] + np.log(np.exp(log_dens - m).sum(axis=1))) - math.log(n)
    return float(neg_entropy - np.mean(log_qz))


def likelihood_metrics(res: dict, iw_k: int, latent_dim: int, seed: int, titled: bool, with_lm: bool) -> dict:
    """The figures of likelihoods()'s result: NLL per character (ELBO, IW bound, given the title, LM),
    KL, active units and mutual information."""
    chars = res["chars"].sum()
    kl_per_poem = res["kl_d"].sum(axis=1)
    cov = np.var(res["mu"], axis=0)
    metrics: dict = {
        "n_test": int(len(res["rows"])), "n_test_iw": int(len(res["iw"])), "iw_k": iw_k,
        "test_nll_per_char": float((res["rec"].sum() + kl_per_poem.sum()) / chars),
        "test_rec_per_char": float(res["rec"].sum() / chars),
        "test_nll_per_char_iw": float(res["iw"].sum() / res["iw_chars"].sum()),
        # The same poems given their titles (a titled model): what a title tells the decoder.
        "test_nll_per_char_iw_titled": (float(res["iw_titled"].sum() / res["iw_chars"].sum())
                                        if titled else None),
        "lm_test_nll_per_char": float(res["lm"].sum() / chars) if with_lm else None,
        "lm_test_nll_per_char_iw_subset": (float(res["lm_iw"].sum() / res["iw_chars"].sum())
                                           if with_lm else None),
        "kl_nats": float(kl_per_poem.mean()),
        "active_units": int((cov > 0.01).sum()),
        "active_units_02": int((cov > 0.2).sum()),
        "latent_dim": int(latent_dim),
        "mutual_info_nats": mutual_info(res["mu"], res["logvar"], seed),
    }
    if metrics["lm_test_nll_per_char_iw_subset"]:
        metrics["iw_vs_lm_ratio"] = (metrics["test_nll_per_char_iw"]
                                     / metrics["lm_test_nll_per_char_iw_subset"])
    return metrics
