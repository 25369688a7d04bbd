"""The `poembot` command: one entry point for corpus, training, generation, worker and bot.

Each subcommand imports its module lazily, so `poembot bot` never loads TensorFlow.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="poembot: classical Chinese poems from a VAE, served on Telegram.",
                  no_args_is_help=True, add_completion=False)
corpus_app = typer.Typer(help="Download, build and describe the chinese-poetry corpus.",
                         no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
index_app = typer.Typer(help="The latent index behind /similar.", no_args_is_help=True)
app.add_typer(index_app, name="index")
font_app = typer.Typer(help="The fonts of poem cards.", no_args_is_help=True)
app.add_typer(font_app, name="font")
card_app = typer.Typer(help="Poem cards (PNG, vertical type).", no_args_is_help=True)
app.add_typer(card_app, name="card")
tunes_app = typer.Typer(help="The 词谱 learned from the ci corpus: tunes (词牌), their forms, rhymes and 平仄.",
                        no_args_is_help=True)
app.add_typer(tunes_app, name="tunes")
couplet_app = typer.Typer(help="对联: the couplet model (a 下联 for a 上联), its training and evaluation.",
                          no_args_is_help=True)
app.add_typer(couplet_app, name="couplet")
ci_app = typer.Typer(help="词: the ci model (the poem model continued on the Song ci), its training and evaluation.",
                     no_args_is_help=True)
app.add_typer(ci_app, name="ci")
DEFAULT_COUPLET_MODEL = str(Path(__file__).resolve().parent / "model" / "couplet")
DEFAULT_CI_MODEL = str(Path(__file__).resolve().parent / "model" / "pretrained" / "ci")
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "model" / "pretrained")


# The commands a user runs at a terminal that load TensorFlow: it is imported up front for them,
# with its start-up lines filtered (model/quiet.py). Not the worker: it validates its settings
# first and must exit on a bad one before loading anything; its start-up lines go to its log.
TENSORFLOW_COMMANDS = {"generate", "train", "finetune", "evaluate", "index", "card", "couplet"}


@app.callback()
def main_options(ctx: typer.Context, verbose: bool = typer.Option(
        False, "--verbose", "-v", help="TensorFlow's own C++ log lines too, and DEBUG logging")) -> None:
    """Runs before every command: quiets TensorFlow's native logs, and imports it for the commands
    that need it."""
    from model.quiet import import_tensorflow_quietly, quiet_native_logs

    if verbose:
        os.environ["POEMBOT_LOG_LEVEL"] = "DEBUG"
    quiet_native_logs()
    if ctx.invoked_subcommand in TENSORFLOW_COMMANDS:
        import_tensorflow_quietly()


def _fail(message: str) -> None:
    typer.secho(f"poembot: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def _bad_settings(role: str, error: Exception) -> None:
    """A role's settings did not validate: say which variable and why, exit 2 (as `poembot bot` does)."""
    typer.secho(f"poembot {role}: {error}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


@corpus_app.command("fetch")
def corpus_fetch(source: str = typer.Option(
        "npm", help="npm (npm pack, checksum-verified), github (the GitHub archive), "
                    "or PATH to a local tarball or folder")) -> None:
    """Fetch chinese-poetry@2.0.1 into the data dir (a no-op when already there)."""
    from corpus.fetch import FetchError, fetch

    try:
        root = fetch(source)
    except FetchError as exc:
        _fail(str(exc))
    typer.echo(f"corpus ready at {root}")


@corpus_app.command("build")
def corpus_build(if_stale: bool = typer.Option(
        False, "--if-stale", help="skip when a build of the current format already exists")) -> None:
    """Parse, clean, classify, split and build the vocabulary."""
    from corpus.ci_reader import is_current as ci_is_current
    from corpus.build_ci import build_ci
    from corpus.build_corpus import build, is_current

    poems_current = if_stale and is_current()
    if poems_current and ci_is_current():
        typer.echo("corpus already built (use `poembot corpus build` to rebuild)")
        return
    try:
        summary = {} if poems_current else build()
        summary["ci"] = build_ci()       # the ci (词) go to their own file, ci.json.gz
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))


@corpus_app.command("stats")
def corpus_stats(as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                 prosody: bool = typer.Option(True, help="measure real-poem prosody too")) -> None:
    """Counts by form and split, vocabulary coverage, and real-poem prosody figures."""
    from corpus.build_corpus import stats

    try:
        result = stats(with_prosody=prosody)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {json.dumps(value, ensure_ascii=False)}")


@corpus_app.command("prosody")
def corpus_prosody(split: str = typer.Option("test", help="train, val, test or all"),
                   raw: Optional[str] = typer.Option(None, help="read the raw package's dist/ "
                                                     "instead of the built corpus"),
                   simplified: bool = typer.Option(False, "--simplified", help="judge the "
                                                   "simplified text (default: traditional)"),
                   as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """How often the corpus' own regular poems rhyme and keep 平仄 (the reference for the model)."""
    from corpus.reader import Corpus
    from corpus.prosody_report import corpus_from_raw, format_reference, prosody_reference

    try:
        corpus = corpus_from_raw(Path(raw)) if raw else Corpus.load()
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    ref = prosody_reference(corpus, None if split == "all" else split, traditional=not simplified)
    typer.echo(json.dumps(ref, ensure_ascii=False, indent=1) if as_json else format_reference(ref))


@corpus_app.command("tables")
def corpus_tables(what: str = typer.Argument(..., help="pingshui, tones or all"),
                  dist: Optional[str] = typer.Option(None, help="the extracted package (default: "
                                                     "the one `poembot corpus fetch` made)"),
                  out: Optional[str] = typer.Option(None, help="where to write (default "
                                                    "verse/data)")) -> None:
    """Regenerate the committed prosody tables verse/data/pingshui.tsv and tones.tsv (needs
    `pip install .[tables]` and the raw corpus)."""
    from corpus.tables import regenerate
    from verse.prosody import TABLES_DIR

    if what not in ("pingshui", "tones", "all"):
        _fail(f"unknown table {what!r}: pingshui, tones or all")
    regenerate(what, Path(dist) if dist else None, Path(out) if out else TABLES_DIR)


@corpus_app.command("pairs")
def corpus_pairs(model: str = typer.Option(DEFAULT_MODEL, help="model folder to write pairs.npz into")
                 ) -> None:
    """The attested character pairs of the built corpus (its training split), by the model's
    vocabulary, into the model folder: best-of-K's attestation measure (model/rescore.py)."""
    from corpus.reader import Corpus
    from model.rescore import PAIRS_FILE, PairTable
    from verse.vocab import Vocab

    vocab = Vocab.load(Path(model) / "vocab.json")
    table = PairTable.from_corpus(Corpus.load(), vocab)
    table.save(Path(model) / PAIRS_FILE)
    print(f"{len(table)} attested pairs -> {Path(model) / PAIRS_FILE}")


@corpus_app.command("pack")
def corpus_pack(out: str = typer.Option("runs/pack", help="folder for the pack (pack.npz, vocab.json, pack.json)"),
                init: Optional[str] = typer.Option(DEFAULT_MODEL, help="the model the run continues from: "
                                                   "its vocabulary, and its train_config.json by default"),
                config: Optional[str] = typer.Option(None, help="training config JSON (default: the init "
                                                     "model's train_config.json)"),
                fresh: bool = typer.Option(False, "--fresh", help="for a model trained from scratch: the "
                                           "corpus' vocabulary, no init")) -> None:
    """The data pack the lent GPU machine trains on (python -m training.device_train; docs/model.md):
    the train and val splits as train.py encodes them, their titles, the vocabulary, the config."""
    from training.pack import write_pack

    init_dir = None if fresh else init
    if config is None:
        config = str(Path(init_dir) / "train_config.json") if init_dir else None
    try:
        path = write_pack(config, out, init=init_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    size = sum(f.stat().st_size for f in path.iterdir())
    typer.echo(f"pack written to {path}: {size / 1e6:.1f} MB")


@index_app.command("build")
def index_build(model: str = typer.Option(DEFAULT_MODEL, help="model folder"),
                out: Optional[str] = typer.Option(None, help="index folder (default: data dir)"),
                size: Optional[int] = typer.Option(None, help="index only this many of the most "
                                                   "popular poems (default: every regular poem)"),
                if_stale: bool = typer.Option(False, "--if-stale",
                                              help="skip when an index for this model exists")) -> None:
    """Encode every regular corpus poem with the model's encoder (μ, float16) into the index behind
    /similar, and write the theme index (terms → popular poems, their mean μ) the worker's themes use."""
    from search.files import default_index_dir, is_current, model_version
    from model.index_build import build_index

    if not (Path(model) / "config.json").exists():
        _fail(f"no model at {model}: train one with `poembot train` or use the shipped one")
    version = model_version(model)
    target = Path(out) if out else default_index_dir(version)
    if if_stale and is_current(target, version):
        typer.echo(f"index already built at {target}")
        return
    try:
        path = build_index(model, target, size=size)
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo(f"index written to {path}")


@font_app.command("fetch")
def font_fetch() -> None:
    """Fetch the card fonts (Noto Serif SC from npm, HanaMin B from Debian), checksum-verified."""
    from bot.fonts import FontError, fetch_fonts

    try:
        directory = fetch_fonts()
    except FontError as exc:
        _fail(str(exc))
    typer.echo(f"card fonts ready in {directory}")


@card_app.command("examples")
def card_examples(out: str = typer.Option("docs/cards", help="folder for the PNGs"),
                  model: str = typer.Option(DEFAULT_MODEL, help="model folder"),
                  seed: int = typer.Option(2026, help="seed of the first poem")) -> None:
    """Write example cards (every form, an acrostic, a traditional poem) from the model's poems."""
    from bot.card import CardError
    from devtools.card_examples import write_examples

    try:
        for path in write_examples(Path(out), model_dir=Path(model), seed=seed):
            typer.echo(path)
    except CardError as exc:
        _fail(str(exc))


@app.command("train")
def train_cmd(config: Optional[str] = typer.Option(None, help="training config JSON "
                                                    "(default training/configs/real.json)"),
              out: str = typer.Option("runs/real", help="output folder"),
              resume: bool = typer.Option(False, "--resume", help="continue from the last "
                                          "checkpoint, or from the weights saved in --out"),
              init: Optional[str] = typer.Option(None, help="start from this trained model "
                                                 "folder (e.g. model/pretrained)"),
              max_steps: Optional[int] = typer.Option(None, help="stop after this many steps")) -> None:
    """Train the VAE and its LM baseline on the built corpus."""
    from training.train import train

    try:
        path = train(config, out, resume=resume, max_steps=max_steps, init=init)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"model saved to {path}")


@app.command("assemble")
def assemble_cmd(run: str = typer.Argument(..., help="the folder a device run wrote ($OUT, fetched back)"),
                 out: str = typer.Option(..., help="the model folder to write"),
                 dtype: str = typer.Option("float16", help="weights' dtype (float16 as shipped, or float32)"),
                 name: Optional[str] = typer.Option(None, help="the run's label in val_history.csv "
                                                    "(default: the folder's name)")) -> None:
    """A model folder (config.json, vocab.json, weights.npz) from a GPU-machine run's parts."""
    from training.device_result import assemble

    try:
        path = assemble(run, out, dtype=dtype, name=name)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"model folder written to {path}")


@app.command("compare-runs")
def compare_runs_cmd(runs: list[str] = typer.Argument(..., help="run folders (each with its val.csv), "
                                                     "each DIR or LABEL=DIR"),
                     out: str = typer.Option(..., help="the PNG to write"),
                     title: str = typer.Option("validation NLL at equal CPU time", help="the plot's title")) -> None:
    """Plot the validation NLL of training runs that shared a machine side by side, and print it."""
    from training.plots import compare_runs

    named = dict(r.split("=", 1) if "=" in r else (Path(r).name, r) for r in runs)
    curves = compare_runs({label: Path(d) for label, d in named.items()}, Path(out), title)
    typer.echo(json.dumps(curves, ensure_ascii=False))
    for label, points in curves.items():
        typer.echo(f"{label}: {points[-1][1]} nats/char after {points[-1][0]} min" if points else f"{label}: no validation yet")


@app.command("gloss")
def gloss_cmd(text: str = typer.Argument(..., help="a poem, lines separated by any punctuation"),
              english: bool = typer.Option(False, "--english", help="English layout")) -> None:
    """A reading aid: each line with its pinyin and a word-by-word English gloss."""
    from protocol.jobs import split_lines
    from reading.gloss import gloss, render

    lines = split_lines(text)
    if not lines:
        _fail("no Chinese text to gloss")
    typer.echo(render(gloss(lines), english=english))


@app.command("finetune")
def finetune_cmd(init: str = typer.Option(DEFAULT_MODEL, help="the trained model to start from"),
                 out: str = typer.Option("runs/canon", help="output model folder"),
                 canon: bool = typer.Option(True, "--canon/--no-canon", help="唐诗三百首, 千家诗 "
                                            "and the most popular poems"),
                 top_rank: int = typer.Option(1000, help="popular corpus poems added to the canon"),
                 file: Optional[str] = typer.Option(None, help="poems to fine-tune on, one a line"),
                 config: Optional[str] = typer.Option(None, help="fine-tune config JSON "
                                                      "(default training/configs/finetune.json)"),
                 max_steps: Optional[int] = typer.Option(None, help="stop after this many steps"),
                 style: Optional[str] = typer.Option(None, help="train a style adapter with this "
                                                     "id instead (model/styles/ID.npz); a shipped "
                                                     "id (training/configs/styles.json) needs no "
                                                     "--poet"),
                 poet: Optional[list[str]] = typer.Option(None, help="with --style: the poet(s) "
                                                          "whose poems it learns"),
                 title: Optional[str] = typer.Option(None, help="with --style: the name /styles "
                                                     "shows (default: the poet or the id)"),
                 styles_dir: Optional[str] = typer.Option(None, help="with --style: where to "
                                                          "write it (POEMBOT_STYLES_DIR)"),
                 measure: bool = typer.Option(True, "--measure/--no-measure", help="with --style: "
                                              "measure it (held-out NLL, style share) into its card")
                 ) -> None:
    """Fine-tune (微调) a trained model on a set of poems, with early stopping on a held-out tenth;
    with --style, train a small adapter on the frozen model instead (a poet's manner)."""
    from training.finetune import finetune

    if not (Path(init) / "config.json").exists():
        _fail(f"no model at {init}")
    if style:
        _finetune_style(style, init, poet, file, title, styles_dir, config, max_steps, measure)
        return
    try:
        path = finetune(init, out, canon=canon and not file, top_rank=top_rank, file=file,
                        config=config, max_steps=max_steps)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"fine-tuned model saved to {path}")


def _finetune_style(style: str, init: str, poets: Optional[list[str]], file: Optional[str],
                    title: Optional[str], styles_dir: Optional[str], config: Optional[str],
                    max_steps: Optional[int], measure: bool) -> None:
    from protocol.paths import styles_dir as default_styles_dir
    from training.style import finetune_style, shipped_style

    entry = shipped_style(style) or {}
    poets = list(poets or ([] if file else entry.get("poets", [])))
    if not poets and not file:
        _fail(f"style {style!r} is not a shipped one: give --poet NAME or --file poems.txt")
    card = {k: entry[k] for k in ("title", "line", "line_en", "aliases") if k in entry}
    card["title"] = title or card.get("title") or (poets[0] if poets else style)
    try:
        path = finetune_style(style, init, styles_dir or default_styles_dir(), poets=poets or None,
                              file=file, card=card, config=config, max_steps=max_steps, measure=measure)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"style {style} saved to {path}")


@app.command("evaluate")
def evaluate_cmd(model: str = typer.Option(DEFAULT_MODEL, help="model folder"),
                 n: int = typer.Option(1000, "--n", help="poems generated per form"),
                 as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                 best_of: Optional[int] = typer.Option(None, help="candidates per poem "
                                                       "(default: GenerateJob's)"),
                 meaning_only: bool = typer.Option(False, "--meaning-only", help="only the "
                                                   "constrained poems, c2st and judge NLL; prints "
                                                   "JSON, writes nothing"),
                 judge: Optional[str] = typer.Option(None, help="LM folder judging the poems "
                                                     "(default MODEL/lm)"),
                 max_test: int = typer.Option(2400, help="test poems for the ELBO"),
                 iw_poems: int = typer.Option(400, help="test poems for the importance-weighted NLL"),
                 iw_k: int = typer.Option(50, help="posterior samples per poem for it"),
                 constrained_only: bool = typer.Option(False, "--constrained-only", help="only the "
                                                       "constrained decoder's section; prints JSON, "
                                                       "writes nothing"),
                 style: Optional[str] = typer.Option(None, help="measure this style adapter "
                                                     "instead: held-out NLL and style share, "
                                                     "written into its card"),
                 styles_dir: Optional[str] = typer.Option(None, help="with --style "
                                                          "(POEMBOT_STYLES_DIR)")) -> None:
    """Write report.md, samples.md, plots and metrics.json into the model folder."""
    from training.evaluate import evaluate, evaluate_constrained, evaluate_meaning

    if not (Path(model) / "config.json").exists():
        _fail(f"no model at {model}")
    if style:
        from protocol.paths import styles_dir as default_styles_dir
        from training.style import evaluate_style
        try:
            metrics = evaluate_style(style, model, styles_dir or default_styles_dir())
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        metrics.pop("samples", None)
        typer.echo(json.dumps(metrics, ensure_ascii=False))
        return
    try:
        if meaning_only:
            evaluate_meaning(model, n=n, best_of=best_of, judge=judge)
        elif constrained_only:
            evaluate_constrained(model, n, as_json=True)
        else:
            evaluate(model, n=n, as_json=as_json, max_test=max_test, iw_poems=iw_poems, iw_k=iw_k,
                     best_of=best_of)
    except FileNotFoundError as exc:
        _fail(str(exc))


def style_id_of(name: str, styles_dir: Path | None = None) -> str:
    """The id of the style a name means, read as the bot reads it (id, title or alias, any script
    or case: 李白, 太白, Li Bai → libai), from the shipped style cards; exits 2 naming the styles."""
    from bot.styles import StyleBook
    from protocol.settings import ModelSettings

    folder = styles_dir if styles_dir is not None else ModelSettings.from_env().styles_dir
    book = StyleBook.from_cards(Path(folder)) if folder else StyleBook()
    found = book.find(name)
    if found is None:
        names = ", ".join(f"{s.title} ({s.id})" for s in book.styles) or "none"
        typer.secho(f"poembot: no style {name!r}; the styles are: {names}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    return found.id


@app.command("generate")
def generate_cmd(form: str = typer.Option("七绝", help="五绝 七绝 五律 七律"),
                 acrostic: str = typer.Option("", help="藏头: first characters of the lines"),
                 keywords: str = typer.Option("", help="theme characters or words"),
                 like: Optional[list[str]] = typer.Option(None, help="imitate this poem's text"),
                 n: int = typer.Option(1, "-n", help="how many poems (up to 1,000; a progress bar "
                                       "past 10)"),
                 seed: Optional[int] = typer.Option(None, help="same seed, same poem"),
                 traditional: bool = typer.Option(False, "--traditional"),
                 as_json: bool = typer.Option(False, "--json"),
                 model: Optional[str] = typer.Option(None, help="model folder"),
                 tone: str = typer.Option("soft", help="hard | soft | off"),
                 temperature: Optional[float] = typer.Option(
                     None, help="default: protocol/sampling.py's, as the bot uses"),
                 title: str = typer.Option("", help="the poem's title, its occasion: 送友人归江南"),
                 style: str = typer.Option("", help="a style by id, name or alias, as the bot takes "
                                           "it (--style libai, --style 李白); see model/styles/"),
                 tune: str = typer.Option("", help="a 词牌 (浣溪沙, 念奴娇, 水調歌頭): write a 词 in its main "
                                          "form; `poembot tunes list` shows them")) -> None:
    """Write poems (or, with --tune, 词) from the command line."""
    from model.generate import generate_cli
    from worker.request import check_poem

    if style:
        style = style_id_of(style)
    raise typer.Exit(generate_cli(form=form, acrostic=acrostic, keywords=keywords, like=like, n=n,
                                  seed=seed, traditional=traditional, json_out=as_json,
                                  model_dir=model, tone=tone, temperature=temperature, style=style,
                                  title=title, check=check_poem, tune=tune))


@app.command("worker")
def worker_cmd(max_batch: Optional[int] = typer.Option(None, help="POEMBOT_MAX_BATCH"),
               max_wait_ms: Optional[int] = typer.Option(None, help="POEMBOT_MAX_WAIT_MS"),
               model_dir: Optional[Path] = typer.Option(None, "--model", help="POEMBOT_MODEL_DIR"),
               redis_url: Optional[str] = typer.Option(None, help="REDIS_URL"),
               worker_id: Optional[str] = typer.Option(None, help="POEMBOT_WORKER_ID: this worker's "
                                                       "consumer name (default host-pid-random)"),
               visibility_ms: Optional[int] = typer.Option(None, help="POEMBOT_VISIBILITY_MS"),
               max_deliveries: Optional[int] = typer.Option(None, help="POEMBOT_MAX_DELIVERIES"),
               metrics_port: Optional[int] = typer.Option(None, help="POEMBOT_METRICS_PORT "
                                                          "(0: any free port)")) -> None:
    """Serve generation and encode jobs from Redis (GPU when present). Each option overrides the
    variable it names."""
    from protocol.settings import ConfigError, WorkerSettings

    options = {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "model_dir": model_dir,
               "redis_url": redis_url, "worker_id": worker_id, "visibility_ms": visibility_ms,
               "max_deliveries": max_deliveries, "metrics_port": metrics_port}
    try:
        # Before TensorFlow loads: a bad value, in the environment or an option, fails at once.
        settings = WorkerSettings.from_env().updated(
            **{name: value for name, value in options.items() if value is not None})
    except ConfigError as exc:
        _bad_settings("worker", exc)
    from worker.service import run_worker

    raise typer.Exit(run_worker(settings))


@app.command("bot")
def bot_cmd() -> None:
    """Run the Telegram bot (webhook when WEBHOOK_URL is set, else long polling)."""
    from bot.app import main as bot_main

    raise typer.Exit(bot_main())


@app.command("run")
def run_cmd(background: bool = typer.Option(
        True, "--background/--no-background",
        help="fetch the fonts and corpus and build the /similar index in the background when missing")) -> None:
    """Everything in one process group: embedded Redis, a worker and the bot (or the sandbox chat), and
    a low-priority background job for what /poem does not need (fonts, corpus, the /similar index)."""
    from protocol.settings import ConfigError
    from run.supervisor import check_settings, run

    sandbox = None
    if not os.environ.get("TELEGRAM_BOT_TOKEN", "").strip():
        from devtools.sandbox import TerminalSandbox      # no token: the terminal chat over the emulator

        sandbox = TerminalSandbox()
    try:
        # Both roles' settings, before anything starts.
        check_settings(dict(os.environ), sandbox_env=sandbox.settings_env if sandbox else None)
    except ConfigError as exc:
        _bad_settings("run", exc)
    raise typer.Exit(run(prepare=background, sandbox=sandbox))


@app.command("health")
def health_cmd(role: str = typer.Option("bot", help="bot | worker")) -> None:
    """Exit 0 when Redis answers and, for a worker, this host's worker heartbeat is fresh; for a bot,
    this replica's liveness record is fresh and names no dead background task (bot/liveness.py). The
    replica is POEMBOT_CONSUMER_NAME, or, when that is unset, every bot replica on this host."""
    import socket

    from protocol.connections import connect, live_workers

    host = socket.gethostname()
    try:
        client = connect(decode_responses=True)
        client.ping()
        problem = None
        if role == "worker":
            if not any(w.get("host") == host for w in live_workers(client)):
                problem = f"no fresh worker heartbeat from {host}"
        else:
            from bot.liveness import replica_problem

            from protocol.settings import ReplicaSettings

            replica = ReplicaSettings.from_env().consumer_name
            problem = replica_problem(client, replica, host)
    except OSError as exc:
        problem = f"Redis unreachable: {exc}"
    except Exception as exc:  # redis-py's errors are not OSErrors
        problem = f"unhealthy: {exc}"
    if problem:
        _fail(problem)
    typer.echo("ok")


@tunes_app.command("learn")
def tunes_learn(corpus: Optional[str] = typer.Option(None, help="the built corpus folder (default: the data "
                                                     "dir's; `poembot corpus build` writes ci.json.gz)"),
                out: Optional[str] = typer.Option(None, help="where to write (default verse/data/tunes.json)"),
                min_poems: int = typer.Option(40, help="learn the tunes with at least this many ci")) -> None:
    """Learn the 词谱 from the ci corpus and write the committed table (tune patterns, no poems)."""
    from corpus.learn_tunes import compare_with_cilin, learn, samples_from_corpus, write
    from verse.tunes import TUNES_PATH

    try:
        samples = samples_from_corpus(Path(corpus) if corpus else None)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    table = learn(samples, min_poems=min_poems)
    check = compare_with_cilin(table.rhymes)
    path = Path(out) if out else TUNES_PATH
    write(table, path, check={k: v for k, v in check.items() if k != "differences"})
    typer.echo(f"wrote {path}: {len(table)} tunes, {len(table.rhymes.parts)} rhyme parts; against 词林正韵: "
               f"precision {check['precision']}, recall {check['recall']} over pairs of 平水韵 groups")
    for diff in check["differences"]:
        typer.echo(f"  {diff['cilin']} {'+'.join(diff['groups'])}: learned "
                   f"{' | '.join('+'.join(p) for p in diff['learned'])}")


@tunes_app.command("list")
def tunes_list(as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
               table: Optional[str] = typer.Option(None, help="another tunes.json")) -> None:
    """Every learned tune: name, ci in the corpus, forms, the main form's share and shape."""
    from verse.tunes import load

    tunes = load(Path(table) if table else None).tunes
    if as_json:
        typer.echo(json.dumps([{"name": t.name, "poems": t.poems, "forms": len(t.forms), "share": t.main.share,
                                "pattern": t.main.pattern(), "rhyme_kind": t.main.rhyme_kind} for t in tunes],
                              ensure_ascii=False))
        return
    for t in tunes:
        typer.echo(f"{t.name}\t{t.poems}\t{len(t.forms)} form{'s' if len(t.forms) > 1 else ''}\t"
                   f"{t.main.share:.0%}\t{t.main.pattern()}\t{t.main.rhyme_kind}")


@tunes_app.command("show")
def tunes_show(name: str = typer.Argument(..., help="a tune's name or alias, simplified or traditional"),
               as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
               table: Optional[str] = typer.Option(None, help="another tunes.json")) -> None:
    """A tune's forms: per line its length, rhyme (韵, with its tone and 换韵 set) and 平仄 (中 = 可平可仄)."""
    from verse.tunes import load, render

    tune = load(Path(table) if table else None).get(name)
    if tune is None:
        _fail(f"no learned tune {name!r} (`poembot tunes list` lists them)")
    typer.echo(json.dumps(tune.to_json(), ensure_ascii=False, indent=1) if as_json else render(tune))


@couplet_app.command("write")
def couplet_write(first: str = typer.Argument(..., help="the 上联 (4 to 11 characters), or 春 for a 春联"),
                  theme: list[str] = typer.Option([], "--theme", help="theme words of a 春联 (with 春)"),
                  n: int = typer.Option(3, "-n", help="下联 wanted"),
                  seed: Optional[int] = typer.Option(None, help="make the answer reproducible"),
                  model: str = typer.Option(DEFAULT_COUPLET_MODEL, help="couplet model folder")) -> None:
    """Print the best n 下联 of a 上联 (or a 春联 written from theme words), one a line."""
    from model.couplet import CoupletWriter
    from protocol.jobs import CoupletJob, ValidationError
    from worker.request import model_request

    from model.generate import load_generator

    spring = first in ("春", "春联")
    try:       # checked as the worker checks a /couplet job, before any model loads
        request = model_request(CoupletJob(first="" if spring else first, theme=list(theme), spring=spring,
                                           n=n, seed=seed), None)
    except ValidationError as exc:
        _fail(exc.message)
    # The poem model writes a 春联's 上联 and rescores every 下联, as in the worker.
    writer = CoupletWriter.load(model, poems=load_generator(DEFAULT_MODEL))
    result = writer.run_one(request)
    if not result.ok:
        _fail(result.error_message or "no couplet")
    for poem in result.poems:
        typer.echo(f"{poem['first']}，{poem['second']}。  横批 {poem['banner']}  (logp {poem['logp']})")


@couplet_app.command("train")
def couplet_train(out: str = typer.Option("runs/couplet", help="output folder (the model folder itself)"),
                  minutes: float = typer.Option(25.0, help="wall-clock budget of this run"),
                  resume: bool = typer.Option(False, "--resume", help="continue from its checkpoint"),
                  tiny: Optional[int] = typer.Option(None, help="train on this many pairs (a smoke run)"),
                  max_steps: Optional[int] = typer.Option(None, help="stop after this many steps"),
                  lr: float = typer.Option(2e-3, help="learning rate (Adam)"),
                  final_lr_share: float = typer.Option(
                      1.0, help="cosine-decay the learning rate to this share of --lr over the budget")) -> None:
    """Train the couplet model on the corpus couplets (颔联, 颈联) and 声律启蒙; copy the result to
    model/couplet to ship it."""
    from protocol.logs import setup_logging
    from training.couplet import CoupletTrainConfig, train

    setup_logging("train")
    path = train(CoupletTrainConfig(max_minutes=minutes, tiny=tiny, max_steps=max_steps,
                                     learning_rate=lr, final_lr_share=final_lr_share), out, resume=resume)
    typer.echo(f"couplet model saved to {path}")


@couplet_app.command("evaluate")
def couplet_evaluate(model: str = typer.Option(DEFAULT_COUPLET_MODEL, help="couplet model folder"),
                     n: int = typer.Option(400, help="held-out pairs"),
                     spring: bool = typer.Option(True, help="also measure 春联 written from theme words"),
                     as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Held-out figures: the rules, tone opposition, word classes against the real 下联, speed."""
    from training.couplet import evaluate, summary

    figures = evaluate(model, n=n, theme_n=24 if spring else 0)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 1))
    if not as_json:
        typer.echo(summary(figures))


@couplet_app.command("sheet")
def couplet_sheet(out: str = typer.Option(..., help="folder for sheet.md and key.json"),
                  model: str = typer.Option(DEFAULT_COUPLET_MODEL, help="couplet model folder"),
                  seed: int = typer.Option(25, help="which held-out pairs, and the shuffle")) -> None:
    """A blind-reading sheet: 24 held-out 上联 with their real 下联 or a generated one, and its key."""
    from training.couplet import blind_sheet

    sheet, key = blind_sheet(model, out, seed=seed)
    typer.echo(f"sheet {sheet}, key {key} (give readers the sheet only)")


@ci_app.command("train")
def ci_train(out: str = typer.Option("runs/ci", help="output folder (the model folder itself)"),
             init: str = typer.Option("", help="the poem model to start from (default: the shipped one)"),
             minutes: float = typer.Option(100.0, help="wall-clock budget of this run (the learning rate "
                                           "decays over it)"),
             resume: bool = typer.Option(False, "--resume", help="continue from its checkpoint"),
             tiny: int = typer.Option(0, help="train on this many ci (a smoke run)"),
             max_steps: Optional[int] = typer.Option(None, help="stop after this many steps")) -> None:
    """Fine-tune the poem model on the Song ci with the tunes' templates; copy the result to
    model/pretrained/ci to ship it (then `poembot ci evaluate`)."""
    from protocol.logs import setup_logging
    from training.ci import CiTrainConfig, train

    setup_logging("train")
    path = train(CiTrainConfig(init=init, max_minutes=minutes, tiny=tiny, max_steps=max_steps), out, resume=resume)
    typer.echo(f"ci model saved to {path}")


@ci_app.command("evaluate")
def ci_evaluate(model: str = typer.Option(DEFAULT_CI_MODEL, help="ci model folder"),
                top: int = typer.Option(50, help="the most common tunes to write"),
                per_tune: int = typer.Option(8, help="ci per tune"),
                as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Form, rhyme and 平仄 per tune, copies, speed; report.md, samples.md and ci_eval.png in the folder."""
    from training.ci_evaluate import evaluate, summary

    figures = evaluate(model, top=top, per_tune=per_tune)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 1))
    if not as_json:
        typer.echo(summary(figures))


@ci_app.command("sheet")
def ci_sheet(out: str = typer.Option(..., help="folder for sheet.md and key.json"),
             model: str = typer.Option(DEFAULT_CI_MODEL, help="ci model folder"),
             seed: int = typer.Option(31, help="which real ci, which themes, and the shuffle")) -> None:
    """A blind-reading sheet: 12 real Song ci (test split) and 12 generated for the same tunes, and its key."""
    from training.ci_evaluate import blind_sheet

    sheet, key = blind_sheet(model, out, seed=seed)
    typer.echo(f"sheet {sheet}, key {key} (give readers the sheet only)")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
