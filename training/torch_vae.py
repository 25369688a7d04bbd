"""The poem VAE (model/vae.py's PoemVAE, the 诗 model) in PyTorch, weight for weight, so that a lent
GPU machine without TensorFlow can train it (training/device_train.py) and its weights come back as a
model folder our Keras code loads.

Mirrors PoemVAE's call and loss_terms: BiGRU encoder (masked at PAD) and the form to (mu, logvar);
z; decoder GRU from tanh(init_state([z, form])) (+ title_init(title)) over [embed(token), z, form]
(+ title_in(title)); float32 logits; token NLL with the exact softmax, KL with free bits per dim,
word dropout of decoder inputs and title dropout while training. No styles, adapters or template
features (the 词 model): a config with template_dim > 0 is refused.

Keras GRUs here use reset_after=True, torch.nn.GRU's formulation; they differ in layout only: Keras
keeps kernels [in, 3H] with gate blocks (update z, reset r, candidate) and a bias [2, 3H] (input,
recurrent), torch [3H, in] with blocks (r, z, n) and two biases.

Imports numpy and torch only (and the TF-free model.folder, model.vae_config, training.grow, verse).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.folder import read_config, read_weights, write_folder
from model.vae_config import VAEConfig
from training.grow import grown_arrays
from verse.vocab import BOS, COMMA, EOS, PAD, PERIOD, UNK, Vocab

MODEL_NAME = "poem_vae"    # the first part of every weight's path in a folder PoemVAE wrote


def _swap_zr(m: np.ndarray) -> np.ndarray:
    """Gate blocks on the last axis from Keras' (z, r, h) to torch's (r, z, n), or back: a swap."""
    z, r, h = np.split(m, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _keras_gru(gru: nn.GRU, suffix: str = "") -> list[np.ndarray]:
    """One direction of a torch GRU as Keras' (kernel, recurrent_kernel, bias)."""
    w_ih, w_hh = (getattr(gru, f"{n}_l0{suffix}").detach().cpu().float().numpy() for n in ("weight_ih", "weight_hh"))
    b_ih, b_hh = (getattr(gru, f"{n}_l0{suffix}").detach().cpu().float().numpy() for n in ("bias_ih", "bias_hh"))
    return [_swap_zr(w_ih.T), _swap_zr(w_hh.T), _swap_zr(np.stack([b_ih, b_hh]))]


def _set_gru(gru: nn.GRU, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray, suffix: str = "") -> None:
    values = {"weight_ih": _swap_zr(kernel).T, "weight_hh": _swap_zr(recurrent).T,
              "bias_ih": _swap_zr(bias)[0], "bias_hh": _swap_zr(bias)[1]}
    for name, value in values.items():
        param = getattr(gru, f"{name}_l0{suffix}")
        if tuple(param.shape) != value.shape:
            raise ValueError(f"GRU {name}{suffix}: shape {value.shape}, the module has {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))


def _dense(layer: nn.Linear) -> list[np.ndarray]:
    out = [layer.weight.detach().cpu().float().numpy().T]
    return out + ([layer.bias.detach().cpu().float().numpy()] if layer.bias is not None else [])


def _set(param: torch.Tensor, value: np.ndarray, key: str) -> None:
    if tuple(param.shape) != value.shape:
        raise ValueError(f"{key}: shape {value.shape}, the module has {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value, np.float32)))


def beta_schedule(config: VAEConfig, step: int) -> float:
    """model.vae.beta_at in plain arithmetic: the KL weight at a training step."""
    period = float(max(config.anneal_steps, 1))
    if config.anneal == "none" or not config.use_latent:
        return config.beta_max
    if config.anneal == "linear":
        return config.beta_max * min(1.0, step / period)
    phase = math.fmod(step, period) / period
    return config.beta_max * min(1.0, phase / max(config.anneal_ratio, 1e-6))


class TorchPoemVAE(nn.Module):
    """PoemVAE's computation for the 诗 model (use_latent, no template features)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if config.template_dim:
            raise ValueError("template_dim > 0 (the 词 model) is not ported to PyTorch")
        if not config.use_latent:
            raise ValueError("only the VAE (use_latent) is ported to PyTorch, not the plain LM")
        c = self.config = config
        cond = c.form_dim + c.latent_dim
        self.embed = nn.Embedding(c.vocab_size, c.emb_dim)
        self.form_embed = nn.Embedding(c.n_forms, c.form_dim)
        self.encoder = nn.GRU(c.emb_dim, c.enc_units, batch_first=True, bidirectional=True)
        self.posterior = nn.Linear(2 * c.enc_units + c.form_dim, 2 * c.latent_dim)
        self.init_state = nn.Linear(cond, c.dec_units)
        self.decoder = nn.GRU(c.emb_dim + cond, c.dec_units, batch_first=True)
        self.logits = nn.Linear(c.dec_units, c.vocab_size)
        if c.title_len:
            self.title_proj = nn.Linear(c.emb_dim, c.title_dim)
            self.title_in = nn.Linear(c.title_dim, c.emb_dim + cond, bias=False)
            self.title_init = nn.Linear(c.title_dim, c.dec_units, bias=False)
        self.reset_like_keras()

    def reset_like_keras(self) -> None:
        """Keras' initialisers (torch's defaults differ: N(0, 1) embeddings): uniform ±0.05
        embeddings, Glorot kernels, orthogonal recurrent kernels, zero biases, zero title_in/init."""
        with torch.no_grad():
            for emb in (self.embed, self.form_embed):
                nn.init.uniform_(emb.weight, -0.05, 0.05)
            for name, param in self.named_parameters():
                if name.startswith(("encoder.", "decoder.")):
                    if "weight_hh" in name:
                        for block in param.chunk(3, dim=0):
                            nn.init.orthogonal_(block)
                    elif "weight_ih" in name:
                        nn.init.xavier_uniform_(param)
                    else:
                        param.zero_()
            for layer in (self.posterior, self.init_state, self.logits,
                          *((self.title_proj,) if self.config.title_len else ())):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            if self.config.title_len:
                self.title_in.weight.zero_()
                self.title_init.weight.zero_()

    # --- the computation ------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, form: torch.Tensor, padded: bool | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar), each [B, Z] float32; the encoder reads each row up to its PADs
        (Keras' masked GRU keeps the state through them; PAD only trails). padded: whether any row
        has PAD, when the caller knows (the check costs a GPU sync per step); None checks."""
        x = self.embed(tokens)
        if padded is None:
            padded = bool((tokens == PAD).any())
        if not padded:
            _, h = self.encoder(x)
        else:
            lengths = (tokens != PAD).sum(dim=1)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, h = self.encoder(packed)
        h = torch.cat([h[0], h[1], self.form_embed(form).to(h.dtype)], dim=-1)
        mu, logvar = self.posterior(h).float().chunk(2, dim=-1)
        # Bounded log-variance keeps exp() finite early in training.
        return mu, logvar.clamp(-10.0, 5.0)

    def title_vector(self, title: torch.Tensor) -> torch.Tensor:
        """The pooled title [B, title_dim]: the mean of its characters' embeddings (all PAD: none)."""
        mask = (title != PAD).float()[:, :, None]
        emb = self.embed(title).float() * mask
        mean = emb.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.tanh(self.title_proj(mean))

    def decode_hidden(self, dec_in: torch.Tensor, z: torch.Tensor, form: torch.Tensor,
                      title: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder states [B, T, H] for decoder inputs [B, T] (the poem shifted right, from BOS)."""
        x = self.embed(dec_in)
        cond = torch.cat([z.to(x.dtype), self.form_embed(form)], dim=-1)
        x = torch.cat([x, cond[:, None, :].expand(-1, dec_in.shape[1], -1)], dim=-1)
        h0 = torch.tanh(self.init_state(cond))
        if self.config.title_len:
            if title is None:
                title = torch.full((dec_in.shape[0], self.config.title_len), PAD, dtype=torch.long,
                                   device=dec_in.device)
            title_vec = self.title_vector(title)
            x = x + self.title_in(title_vec)[:, None, :]
            h0 = h0 + self.title_init(title_vec)
        seq, _ = self.decoder(x, h0[None].to(x.dtype))
        return seq

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits even under autocast, as Keras' float32 output layer: the softmax needs the range."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return self.logits(hidden.float())

    def word_dropout(self, inputs: torch.Tensor, rate: float, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """A share of decoder input characters replaced by <unk>; BOS, punctuation, PAD, EOS stay."""
        if rate <= 0:
            return inputs
        keep = ((inputs == BOS) | (inputs == COMMA) | (inputs == PERIOD) | (inputs == PAD)
                | (inputs == EOS))
        drop = torch.rand(inputs.shape, device=inputs.device, generator=generator) < rate
        return torch.where(drop & ~keep, torch.full_like(inputs, UNK), inputs)

    def title_dropout(self, title: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The whole title blanked for a share of poems, so the model also writes without one."""
        rate = self.config.title_dropout
        if rate <= 0:
            return title
        drop = torch.rand((title.shape[0], 1), device=title.device, generator=generator) < rate
        return torch.where(drop, torch.full_like(title, PAD), title)

    def forward(self, tokens: torch.Tensor, form: torch.Tensor, title: torch.Tensor | None = None,
                eps: torch.Tensor | None = None, training: bool = False,
                generator: torch.Generator | None = None, padded: bool | None = None) -> dict:
        """PoemVAE.call: logits [B, T-1, V] for targets tokens[:, 1:], and mu, logvar, z.
        eps [B, Z]: the standard normal draws behind z (fresh ones when None); padded: see encode."""
        dec_in = tokens[:, :-1]
        if not self.config.title_len:
            title = None
        if training:
            dec_in = self.word_dropout(dec_in, self.config.word_dropout, generator)
            if title is not None:
                title = self.title_dropout(title, generator)
        mu, logvar = self.encode(tokens, form, padded)
        if eps is None:
            eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.output(self.decode_hidden(dec_in, z, form, title))
        return {"logits": logits, "mu": mu, "logvar": logvar, "z": z}

    def loss_terms(self, tokens: torch.Tensor, form: torch.Tensor, title: torch.Tensor | None = None,
                   step: int = 0, beta: float | None = None, eps: torch.Tensor | None = None,
                   training: bool = False, generator: torch.Generator | None = None,
                   padded: bool | None = None) -> dict:
        """PoemVAE.loss_terms with the exact softmax: per poem averaged over the batch (nats);
        loss = rec + beta * KL_free_bits, "kl" the true KL, "n_tokens" the targets per poem."""
        out = self(tokens, form, title, eps=eps, training=training, generator=generator, padded=padded)
        targets = tokens[:, 1:]
        logits = out["logits"]
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                              reduction="none").view(targets.shape)
        mask = (targets != PAD).float()
        rec = (nll * mask).sum(dim=1).mean()
        n_tokens = mask.sum(dim=1).mean()
        kl_d = 0.5 * (out["mu"].square() + out["logvar"].exp() - 1.0 - out["logvar"])
        kl = kl_d.sum(dim=1).mean()
        per_dim = kl_d.mean(dim=0)
        if self.config.free_bits > 0:
            # The floor is on the batch mean per dim: a dim below it gets no gradient to zero.
            per_dim = per_dim.clamp(min=self.config.free_bits)
        kl_fb = per_dim.sum()
        beta = beta_schedule(self.config, step) if beta is None else float(beta)
        return {"loss": rec + beta * kl_fb, "rec": rec, "kl": kl, "kl_fb": kl_fb,
                "beta": torch.tensor(beta), "n_tokens": n_tokens}

    # --- Keras layout -------------------------------------------------------------------------------
    def keras_arrays(self) -> dict[str, np.ndarray]:
        """Every weight as PoemVAE holds it, keyed by weight_key, in PoemVAE's weight order."""
        c = self.config
        out = {"embed/embeddings": self.embed.weight.detach().cpu().float().numpy(),
               "form_embed/embeddings": self.form_embed.weight.detach().cpu().float().numpy()}
        for direction, suffix in (("forward_gru", ""), ("backward_gru", "_reverse")):
            for name, value in zip(("kernel", "recurrent_kernel", "bias"), _keras_gru(self.encoder, suffix)):
                out[f"encoder/{direction}/gru_cell/{name}"] = value
        layers = [("posterior", self.posterior), ("init_state", self.init_state)]
        for name, layer in layers:
            out[f"{name}/kernel"], out[f"{name}/bias"] = _dense(layer)
        for name, value in zip(("kernel", "recurrent_kernel", "bias"), _keras_gru(self.decoder)):
            out[f"decoder/gru_cell/{name}"] = value
        out["logits/kernel"], out["logits/bias"] = _dense(self.logits)
        if c.title_len:
            out["title_proj/kernel"], out["title_proj/bias"] = _dense(self.title_proj)
            out["title_in/kernel"], = _dense(self.title_in)
            out["title_init/kernel"], = _dense(self.title_init)
        return out

    def load_keras_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Assign weights given in PoemVAE's layout (keyed by weight_key); every weight is needed."""
        expected = self.keras_arrays().keys()
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
        if missing or extra:
            raise ValueError(f"weights missing: {missing}; weights the module has no place for: {extra}")
        a = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        _set(self.embed.weight, a["embed/embeddings"], "embed/embeddings")
        _set(self.form_embed.weight, a["form_embed/embeddings"], "form_embed/embeddings")
        for direction, suffix in (("forward_gru", ""), ("backward_gru", "_reverse")):
            p = f"encoder/{direction}/gru_cell/"
            _set_gru(self.encoder, a[p + "kernel"], a[p + "recurrent_kernel"], a[p + "bias"], suffix)
        for name in ("posterior", "init_state", "logits", *(("title_proj",) if self.config.title_len else ())):
            layer = getattr(self, name)
            _set(layer.weight, a[f"{name}/kernel"].T, f"{name}/kernel")
            _set(layer.bias, a[f"{name}/bias"], f"{name}/bias")
        _set_gru(self.decoder, a["decoder/gru_cell/kernel"], a["decoder/gru_cell/recurrent_kernel"],
                 a["decoder/gru_cell/bias"])
        if self.config.title_len:
            _set(self.title_in.weight, a["title_in/kernel"].T, "title_in/kernel")
            _set(self.title_init.weight, a["title_init/kernel"].T, "title_init/kernel")


# --- model folders (model/folder.py's format) ----------------------------------------------------
def load_torch_folder(directory: str | Path, config: VAEConfig | None = None) -> TorchPoemVAE:
    """A TorchPoemVAE with a model folder's weights; config (default: the folder's) may ask for a wider
    decoder (dec_units), grown from the folder's (training/grow.py), or add layers (title), left as built."""
    source_config = VAEConfig.from_dict(read_config(directory))
    config = config or source_config
    if config.vocab_size != source_config.vocab_size:
        raise ValueError(f"{directory}: vocabulary of {source_config.vocab_size}, the config has {config.vocab_size}")
    if config.dec_units < source_config.dec_units:
        raise ValueError(f"{directory}: decoder of {source_config.dec_units} units, cannot shrink to {config.dec_units}")
    module = TorchPoemVAE(config)
    module.load_keras_arrays(grown_arrays(read_weights(directory), module.keras_arrays(),
                                          grow=config.dec_units > source_config.dec_units, where=str(directory)))
    return module


def save_torch_folder(module: TorchPoemVAE, vocab: Vocab, directory: str | Path, dtype: str = "float16",
                      metrics: dict | None = None) -> Path:
    """The module as a model folder in model/folder.py's format (config.json, vocab.json, weights.npz,
    metrics.json), which model.vae.load_model reads."""
    return write_arrays_folder(module.config, module.keras_arrays(), vocab, directory, dtype, metrics)


def write_arrays_folder(config: VAEConfig, arrays: dict[str, np.ndarray], vocab: Vocab, directory: str | Path,
                        dtype: str = "float16", metrics: dict | None = None) -> Path:
    """A model folder from weights in PoemVAE's layout and order (keras_arrays), named as PoemVAE names them."""
    return write_folder(directory, config.to_dict(), vocab, [f"{MODEL_NAME}/{k}" for k in arrays],
                        list(arrays.values()), dtype, metrics)
