"""The poem VAE: BiGRU encoder to a Gaussian latent, GRU decoder conditioned on the latent and the form.

With use_latent=False the same decoder is a plain character language model (the baseline).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from model.folder import load_folder
from model.folder import CONFIG_FILE, METRICS_FILE, VOCAB_FILE, WEIGHTS_FILE  # noqa: F401 (their home before)
from model.vae_config import ANNEALS, VAEConfig  # noqa: F401 (their home before)
from verse.vocab import BOS, COMMA, EOS, PAD, PERIOD, UNK

if TYPE_CHECKING:
    from verse.vocab import Vocab


def beta_at(config: VAEConfig, step: int | tf.Tensor) -> tf.Tensor:
    """KL weight at a training step: cyclical (Fu et al. 2019), linear warm-up, or constant."""
    step = tf.cast(step, tf.float32)
    beta_max = tf.constant(config.beta_max, tf.float32)
    period = float(max(config.anneal_steps, 1))
    if config.anneal == "none" or not config.use_latent:
        return beta_max
    if config.anneal == "linear":
        return beta_max * tf.minimum(1.0, step / period)
    phase = tf.math.floormod(step, period) / period
    return beta_max * tf.minimum(1.0, phase / max(config.anneal_ratio, 1e-6))


def kl_per_dim(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(q(z|x) || N(0, I)) for each poem and dim, [B, Z], in nats."""
    mu = tf.cast(mu, tf.float32)
    logvar = tf.cast(logvar, tf.float32)
    return 0.5 * (tf.square(mu) + tf.exp(logvar) - 1.0 - logvar)


def free_bits_kl(kl: tf.Tensor, free_bits: float) -> tf.Tensor:
    """Batch-mean KL summed over dims, each dim floored at free_bits (Kingma et al. 2016).

    The floor is applied to the batch mean per dim, so a dim below it gets no gradient pushing it
    to zero; that is what keeps units active.
    """
    per_dim = tf.reduce_mean(kl, axis=0)
    if free_bits > 0:
        per_dim = tf.maximum(per_dim, free_bits)
    return tf.reduce_sum(per_dim)


def log_uniform_candidates(num_sampled: int, vocab_size: int | tf.Tensor
                           ) -> tuple[tf.Tensor, tf.Tensor]:
    """num_sampled ids drawn with replacement from the Zipfian (log-uniform) distribution
    P(c) = log((c + 2) / (c + 1)) / log(V + 1), and each one's log expected count.

    The distribution tf.nn's samplers use; it fits because vocabulary ids are sorted by corpus
    frequency (Vocab.build). Written with plain ops, unlike tf.random.log_uniform_candidate_sampler,
    so the training step compiles with XLA.
    """
    log_range = tf.math.log(tf.cast(vocab_size, tf.float32) + 1.0)
    u = tf.random.uniform([num_sampled])
    ids = tf.cast(tf.floor(tf.exp(u * log_range)), tf.int32) - 1
    ids = tf.clip_by_value(ids, 0, tf.cast(vocab_size, tf.int32) - 1)
    return ids, log_expected_count(ids, num_sampled, log_range)


def log_expected_count(ids: tf.Tensor, num_sampled: int, log_range: tf.Tensor) -> tf.Tensor:
    """log(num_sampled * P(id)) under the log-uniform sampler of log_uniform_candidates."""
    f = tf.cast(ids, tf.float32)
    p = (tf.math.log(f + 2.0) - tf.math.log(f + 1.0)) / log_range
    return tf.math.log(float(num_sampled) * p)


def sampled_token_nll(hidden: tf.Tensor, targets: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor,
                      num_sampled: int) -> tf.Tensor:
    """NLL per poem [B] under a sampled softmax (Jean et al. 2015) — a training-time estimate.

    Each target competes with num_sampled negatives shared by the batch, every logit corrected
    by its log expected count, so only [N, S] logits are computed instead of [N, V]. The output
    layer is unchanged: evaluation and decoding use the exact softmax of the same weights.
    hidden [B, T, H], targets [B, T], kernel [H, V], bias [V].
    """
    units = tf.shape(hidden)[-1]
    h = tf.reshape(tf.cast(hidden, tf.float32), [-1, units])                  # [N, H]
    t = tf.reshape(tf.cast(targets, tf.int32), [-1])                           # [N]
    vocab_size = tf.shape(kernel)[1]
    log_range = tf.math.log(tf.cast(vocab_size, tf.float32) + 1.0)
    sampled, sampled_logq = log_uniform_candidates(num_sampled, vocab_size)
    kernel_t = tf.transpose(tf.cast(kernel, tf.float32))                       # [V, H]
    bias = tf.cast(bias, tf.float32)
    true_logit = (tf.reduce_sum(h * tf.gather(kernel_t, t), axis=-1) + tf.gather(bias, t)
                  - log_expected_count(t, num_sampled, log_range))             # [N]
    neg_logits = (tf.matmul(h, tf.gather(kernel_t, sampled), transpose_b=True)
                  + tf.gather(bias, sampled) - sampled_logq)                   # [N, S]
    # A negative that happens to be the target is not a negative ("accidental hit").
    hit = tf.equal(t[:, None], sampled[None, :])
    neg_logits = tf.where(hit, tf.fill(tf.shape(neg_logits), -1e9), neg_logits)
    all_logits = tf.concat([true_logit[:, None], neg_logits], axis=1)
    nll = tf.reduce_logsumexp(all_logits, axis=1) - true_logit
    mask = tf.cast(tf.not_equal(t, PAD), tf.float32)
    return tf.reduce_sum(tf.reshape(nll * mask, tf.shape(targets)), axis=1)


def token_nll(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """NLL per poem, [B], summed over non-pad target tokens."""
    logits = tf.cast(logits, tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    mask = tf.cast(tf.not_equal(targets, PAD), tf.float32)
    return tf.reduce_sum(nll * mask, axis=1)


class PoemVAE(keras.Model):
    """Sequence VAE over one poem; see module docstring. Build with `build_vae(config)`."""

    def __init__(self, config: VAEConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.embed = layers.Embedding(c.vocab_size, c.emb_dim, name="embed")
        self.form_embed = layers.Embedding(c.n_forms, c.form_dim, name="form_embed")
        if c.use_latent:
            self.encoder = layers.Bidirectional(
                layers.GRU(c.enc_units, return_sequences=False), merge_mode="concat", name="encoder")
            self.to_posterior = layers.Dense(2 * c.latent_dim, name="posterior")
        self.init_state = layers.Dense(c.dec_units, activation="tanh", name="init_state")
        self.decoder = layers.GRU(c.dec_units, return_sequences=True, return_state=True,
                                  name="decoder")
        # float32 logits even under mixed precision: the softmax needs the range.
        self.out = layers.Dense(c.vocab_size, dtype="float32", name="logits")
        if c.title_len:
            cond_dim = c.form_dim + (c.latent_dim if c.use_latent else 0)
            self.title_proj = layers.Dense(c.title_dim, activation="tanh", name="title_proj")
            self.title_in = layers.Dense(c.emb_dim + cond_dim, use_bias=False,
                                         kernel_initializer="zeros", name="title_in")
            self.title_init = layers.Dense(c.dec_units, use_bias=False,
                                           kernel_initializer="zeros", name="title_init")
        if c.template_dim:
            cond_dim = c.form_dim + (c.latent_dim if c.use_latent else 0)
            self.template_in = layers.Dense(c.emb_dim + cond_dim, use_bias=False,
                                            kernel_initializer="zeros", name="template_in")

    # --- the pieces the decoders call -------------------------------------------------------
    def encode(self, tokens: tf.Tensor, form: tf.Tensor, training: bool = False
               ) -> tuple[tf.Tensor, tf.Tensor]:
        """Posterior parameters (mu, logvar), each [B, Z] float32."""
        if not self.config.use_latent:
            raise ValueError("the plain language model has no encoder")
        tokens = tf.convert_to_tensor(tokens, tf.int32)
        x = self.embed(tokens)
        mask = tf.not_equal(tokens, PAD)
        h = self.encoder(x, mask=mask, training=training)
        h = tf.concat([h, tf.cast(self.form_embed(tf.cast(form, tf.int32)), h.dtype)], axis=-1)
        stats = tf.cast(self.to_posterior(h), tf.float32)
        mu, logvar = tf.split(stats, 2, axis=-1)
        # Bounded log-variance keeps exp() finite early in training.
        return mu, tf.clip_by_value(logvar, -10.0, 5.0)

    def _conditioning(self, z: tf.Tensor, form: tf.Tensor) -> tf.Tensor:
        """What the decoder sees besides the token: [z, form embedding], or the form alone."""
        f = self.form_embed(tf.cast(form, tf.int32))
        if not self.config.use_latent:
            return f
        return tf.concat([tf.cast(z, f.dtype), f], axis=-1)

    def title_vector(self, title: tf.Tensor | None, batch: tf.Tensor | int) -> tf.Tensor | None:
        """The pooled title [B, title_dim] for title ids [B, L] (PAD-filled; all PAD = no title),
        or None for a model without titles. The mean of the characters' embeddings: a title is a
        handful of words (送友人, 秋夜, 登高), and their order adds little to what they name."""
        if not self.config.title_len:
            return None
        if title is None:
            title = tf.fill([batch, self.config.title_len], tf.constant(PAD, tf.int32))
        title = tf.cast(title, tf.int32)
        mask = tf.cast(tf.not_equal(title, PAD), tf.float32)[:, :, None]
        emb = tf.cast(self.embed(title), tf.float32) * mask
        mean = tf.reduce_sum(emb, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return self.title_proj(mean)

    def decoder_init(self, z: tf.Tensor, form: tf.Tensor, title_vec: tf.Tensor | None = None
                     ) -> tf.Tensor:
        """Initial decoder state [B, H] from the latent, the form and the title vector."""
        h0 = self.init_state(self._conditioning(z, form))
        if title_vec is not None:
            h0 = h0 + tf.cast(self.title_init(title_vec), h0.dtype)
        return h0

    def decoder_step(self, token: tf.Tensor, state: tf.Tensor, z: tf.Tensor, form: tf.Tensor,
                     adapter: Any = None, title_vec: tf.Tensor | None = None,
                     template: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """One decoding step: (logits [B, V] float32, new state [B, H]). Pure tensor ops.

        adapter: a style (model/styles.py: Adapter, or StyleMix for a batch of styles) or None.
        title_vec: title_vector() of the rows, or None (a model without titles).
        template: the features [B, template_dim] of the position this step writes (model/ci.py),
        or None (a model without them)."""
        x = self.embed(tf.cast(token, tf.int32))
        cond = self._conditioning(z, form)
        x = tf.concat([x, tf.cast(cond, x.dtype)], axis=-1)
        if title_vec is not None:
            x = x + tf.cast(self.title_in(title_vec), x.dtype)
        if template is not None and self.config.template_dim:
            x = x + tf.cast(self.template_in(tf.cast(template, tf.float32)), x.dtype)
        if adapter is not None:
            x = adapter.adapt_input(x)
        h, _ = self.decoder.cell(x, [state])
        logits = tf.cast(self.out(h), tf.float32)
        return (logits if adapter is None else adapter.adapt_logits(h, logits)), h

    def decode_hidden(self, inputs: tf.Tensor, z: tf.Tensor, form: tf.Tensor,
                      training: bool = False, adapter: Any = None,
                      title: tf.Tensor | None = None, template: tf.Tensor | None = None) -> tf.Tensor:
        """Decoder states [B, T, H] for decoder inputs [B, T] (the poem shifted right, from BOS);
        template [B, T, template_dim]: the features of the position each step writes."""
        x = self.embed(inputs)
        cond = tf.cast(self._conditioning(z, form), x.dtype)
        cond = tf.tile(cond[:, None, :], [1, tf.shape(inputs)[1], 1])
        x = tf.concat([x, cond], axis=-1)
        title_vec = self.title_vector(title, tf.shape(inputs)[0])
        if title_vec is not None:
            x = x + tf.cast(self.title_in(title_vec), x.dtype)[:, None, :]
        if template is not None and self.config.template_dim:
            x = x + tf.cast(self.template_in(tf.cast(template, tf.float32)), x.dtype)
        if adapter is not None:
            x = adapter.adapt_input(x)
        h0 = self.decoder_init(z, form, title_vec)
        seq, _ = self.decoder(x, initial_state=h0, training=training)
        return seq

    def decode_teacher_forced(self, inputs: tf.Tensor, z: tf.Tensor, form: tf.Tensor,
                              training: bool = False, adapter: Any = None,
                              title: tf.Tensor | None = None, template: tf.Tensor | None = None
                              ) -> tf.Tensor:
        """Logits [B, T, V] for decoder inputs [B, T] (the poem shifted right, starting with BOS)."""
        h = self.decode_hidden(inputs, z, form, training=training, adapter=adapter, title=title,
                               template=template)
        logits = self.out(h)
        return logits if adapter is None else adapter.adapt_logits(h, tf.cast(logits, tf.float32))

    # --- training ---------------------------------------------------------------------------
    def word_dropout(self, inputs: tf.Tensor, rate: float) -> tf.Tensor:
        """Replace a share of decoder input characters by <unk> (Bowman et al. 2016).

        BOS and punctuation stay: they carry the form, which the latent need not explain.
        """
        if rate <= 0:
            return inputs
        keep_always = (tf.equal(inputs, BOS) | tf.equal(inputs, COMMA) | tf.equal(inputs, PERIOD)
                       | tf.equal(inputs, PAD) | tf.equal(inputs, EOS))
        drop = tf.random.uniform(tf.shape(inputs)) < rate
        return tf.where(drop & ~keep_always, tf.constant(UNK, inputs.dtype), inputs)

    def title_dropout(self, title: tf.Tensor) -> tf.Tensor:
        """Blank the whole title of a share of poems, so the model also writes without one."""
        rate = self.config.title_dropout
        if rate <= 0:
            return title
        drop = tf.random.uniform([tf.shape(title)[0], 1]) < rate
        return tf.where(drop, tf.constant(PAD, title.dtype), title)

    def sample_z(self, mu: tf.Tensor, logvar: tf.Tensor, eps: tf.Tensor | None = None) -> tf.Tensor:
        eps = tf.random.normal(tf.shape(mu)) if eps is None else eps
        return mu + tf.exp(0.5 * logvar) * eps

    def call(self, inputs: dict, training: bool = False, hidden_only: bool = False,
             eps: tf.Tensor | None = None) -> dict:
        """Teacher-forced pass. inputs: {"tokens": [B, T] BOS..EOS int32, "form": [B] int32,
        optionally "title": [B, L] int32 PAD-filled} (the title counts only where config.title_len),
        and "template": [B, T-1, template_dim] (the 词 model: the features of each target position).

        Returns logits [B, T-1, V] for targets tokens[:, 1:], plus mu, logvar, z ([B, 0] for the LM).
        With hidden_only the decoder states [B, T-1, H] come back as "hidden" instead of logits
        (the sampled-softmax loss projects only the classes it needs). eps [B, Z]: the standard
        normal draws behind z (fresh ones when None).
        """
        tokens = tf.cast(inputs["tokens"], tf.int32)
        form = tf.cast(inputs["form"], tf.int32)
        dec_in = tokens[:, :-1]
        title = inputs.get("title") if self.config.title_len else None
        if title is not None:
            title = tf.cast(title, tf.int32)
        if training:
            dec_in = self.word_dropout(dec_in, self.config.word_dropout)
            if title is not None:
                title = self.title_dropout(title)
        template = inputs.get("template") if self.config.template_dim else None
        if self.config.use_latent:
            mu, logvar = self.encode(tokens, form, training=training)
            z = self.sample_z(mu, logvar, eps)
        else:
            batch = tf.shape(tokens)[0]
            mu = logvar = z = tf.zeros([batch, 0], tf.float32)
        if hidden_only:
            hidden = self.decode_hidden(dec_in, z, form, training=training, title=title, template=template)
            return {"hidden": hidden, "mu": mu, "logvar": logvar, "z": z}
        logits = self.decode_teacher_forced(dec_in, z, form, training=training, title=title,
                                            template=template)
        return {"logits": logits, "mu": mu, "logvar": logvar, "z": z}

    def loss_terms(self, inputs: dict, step: int | tf.Tensor, training: bool = False,
                   beta: float | tf.Tensor | None = None, num_sampled: int = 0,
                   eps: tf.Tensor | None = None) -> dict:
        """Loss and its parts, per poem averaged over the batch (nats).

        loss = rec + beta * KL_free_bits; "kl" is the true KL, "n_tokens" the targets per poem.
        beta defaults to the annealing schedule at step. num_sampled > 0 estimates rec with a
        sampled softmax of that many negatives (training only: it is not the exact likelihood).
        eps: the draws behind z (see call).
        """
        targets = tf.cast(inputs["tokens"], tf.int32)[:, 1:]
        if num_sampled > 0:
            out = self(inputs, training=training, hidden_only=True, eps=eps)
            rec = tf.reduce_mean(sampled_token_nll(out["hidden"], targets, self.out.kernel,
                                                   self.out.bias, num_sampled))
        else:
            out = self(inputs, training=training, eps=eps)
            rec = tf.reduce_mean(token_nll(out["logits"], targets))
        n_tokens = tf.reduce_mean(tf.reduce_sum(tf.cast(tf.not_equal(targets, PAD), tf.float32), 1))
        if self.config.use_latent:
            kl_d = kl_per_dim(out["mu"], out["logvar"])
            kl = tf.reduce_mean(tf.reduce_sum(kl_d, axis=1))
            kl_fb = free_bits_kl(kl_d, self.config.free_bits)
            beta = beta_at(self.config, step) if beta is None else tf.cast(beta, tf.float32)
        else:
            kl = kl_fb = beta = tf.constant(0.0)
        loss = rec + beta * kl_fb
        return {"loss": loss, "rec": rec, "kl": kl, "kl_fb": kl_fb, "beta": beta,
                "n_tokens": n_tokens}


def dummy_inputs(config: VAEConfig, batch: int = 2, length: int = 8) -> dict:
    tokens = np.full((batch, length), 6 % config.vocab_size, np.int32)
    tokens[:, 0], tokens[:, -1] = BOS, EOS
    out = {"tokens": tokens, "form": np.zeros((batch,), np.int32)}
    if config.title_len:
        out["title"] = np.full((batch, config.title_len), 6 % config.vocab_size, np.int32)
    if config.template_dim:
        out["template"] = np.zeros((batch, length - 1, config.template_dim), np.float32)
    return out


def build_vae(config: VAEConfig) -> PoemVAE:
    """A random-init model with all weights created (one tiny forward pass)."""
    model = PoemVAE(config)
    model(dummy_inputs(config), training=False)
    return model


def log_likelihood_iw(model: PoemVAE, inputs: dict, k: int = 50,
                      eps: tf.Tensor | None = None, adapter: Any = None) -> tf.Tensor:
    """Importance-weighted log p(x) per poem [B] (Burda et al. 2016), k posterior samples.

    log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k. All k samples go
    through the decoder as one batch of B*k rows; wrap in tf.function for speed. eps [B, k, Z]
    fixes the standard-normal draws (tests compare bounds on the same samples). adapter: a style's
    (model/styles.py), whose decoder is scored; the encoder is the base model's.
    """
    tokens = tf.cast(inputs["tokens"], tf.int32)
    form = tf.cast(inputs["form"], tf.int32)
    targets = tokens[:, 1:]
    if not model.config.use_latent:
        out = model(inputs, training=False)
        return -token_nll(out["logits"], targets)
    mu, logvar = model.encode(tokens, form)
    batch, zdim = tf.shape(mu)[0], tf.shape(mu)[1]
    if eps is None:
        eps = tf.random.normal([batch, k, zdim])
    z = mu[:, None, :] + tf.exp(0.5 * logvar)[:, None, :] * eps          # [B, k, Z]
    flat_z = tf.reshape(z, [batch * k, zdim])
    rep_tokens = tf.repeat(tokens, k, axis=0)
    rep_form = tf.repeat(form, k, axis=0)
    title = inputs.get("title") if model.config.title_len else None
    rep_title = None if title is None else tf.repeat(tf.cast(title, tf.int32), k, axis=0)
    template = inputs.get("template") if model.config.template_dim else None
    rep_template = None if template is None else tf.repeat(tf.cast(template, tf.float32), k, axis=0)
    logits = model.decode_teacher_forced(rep_tokens[:, :-1], flat_z, rep_form, adapter=adapter,
                                         title=rep_title, template=rep_template)
    log_px_z = tf.reshape(-token_nll(logits, rep_tokens[:, 1:]), [batch, k])
    log2pi = math.log(2 * math.pi)
    log_pz = -0.5 * tf.reduce_sum(tf.square(z) + log2pi, axis=2)
    log_qz = -0.5 * tf.reduce_sum(tf.square(eps) + logvar[:, None, :] + log2pi, axis=2)
    return tf.reduce_logsumexp(log_px_z + log_pz - log_qz, axis=1) - math.log(k)


# --- one folder per trained model (model/folder.py) -------------------------------------------


def save_model(model: PoemVAE, vocab: "Vocab", directory: str | Path, dtype: str = "float16",
               metrics: dict | None = None) -> Path:
    """Write config.json, vocab.json, weights.npz (float16 by default: half the size, same samples)
    and metrics.json into directory; loading needs nothing else."""
    from model.folder import save_folder

    return save_folder(model, model.config.to_dict(), vocab, directory, dtype, metrics)


def load_model(directory: str | Path) -> tuple[PoemVAE, "Vocab", VAEConfig]:
    """The (model, vocab, config) saved by save_model; weights come back as float32."""
    return load_folder(directory, VAEConfig, build_vae)
