"""The poem VAE's config (its folder's config.json), apart from model/vae.py so that code without
TensorFlow (training/torch_vae.py, the GPU machine's trainer) reads the same fields and defaults."""
from __future__ import annotations

from dataclasses import dataclass

from model.folder import SavedConfig
from verse.forms import FORMS, MAX_SEQ_LEN

ANNEALS = ("cyclical", "linear", "none")


@dataclass
class VAEConfig(SavedConfig):
    vocab_size: int
    emb_dim: int = 256
    enc_units: int = 256           # per direction of the BiGRU
    dec_units: int = 512
    latent_dim: int = 64
    n_forms: int = len(FORMS)
    form_dim: int = 16
    word_dropout: float = 0.25     # share of decoder inputs replaced by <unk> while training
    beta_max: float = 1.0
    anneal: str = "cyclical"       # cyclical | linear | none
    anneal_steps: int = 4000       # one cycle (cyclical) or the ramp (linear)
    anneal_ratio: float = 0.5      # share of a cycle spent ramping up (cyclical)
    free_bits: float = 0.15        # nats per latent dim below which KL is not penalised
    max_len: int = MAX_SEQ_LEN + 2  # BOS + 七律 + EOS
    use_latent: bool = True
    # The title the poem was written under (its occasion): up to title_len characters, pooled
    # into a vector that is added to the decoder's input and initial state. 0 turns it off (the
    # models trained before titles). The layers that read it start at zero, so a titled model
    # continued from an untitled one starts out writing exactly as that one did.
    title_len: int = 0
    title_dim: int = 128
    title_dropout: float = 0.2     # share of training poems shown no title (untitled requests)
    # Per-step features of the position being written (the 词 model, model/ci.py: where the line
    # ends, whether it rhymes, the tune's tone there): template_dim multi-hot features added to the
    # decoder's input through a zero-initialised layer, so a model continued from one without them
    # starts out writing exactly as that one did. 0 turns it off (the 诗 model).
    template_dim: int = 0

    def __post_init__(self) -> None:
        if self.anneal not in ANNEALS:
            raise ValueError(f"anneal must be one of {ANNEALS}, not {self.anneal!r}")
