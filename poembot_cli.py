"""The `poembot` command: one entry point for corpus, training, generation, worker and bot.

Each subcommand imports its module lazily, so `poembot bot` never loads TensorFlow.
"""
from __future__ import annotations

import json
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
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "model" / "pretrained")


def _fail(message: str) -> None:
    typer.secho(f"poembot: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@corpus_app.command("fetch")
def corpus_fetch(source: str = typer.Option(
        "npm", help="npm (npm pack, checksum-verified), github (the GitHub archive), "
                    "or PATH to a local tarball or folder")) -> None:
    """Fetch chinese-poetry@2.0.1 into the data dir (a no-op when already there)."""
    from training.fetch import FetchError, fetch

    try:
        root = fetch(source)
    except FetchError as exc:
        _fail(str(exc))
    typer.echo(f"corpus ready at {root}")


@corpus_app.command("build")
def corpus_build(if_stale: bool = typer.Option(
        False, "--if-stale", help="skip when a build of the current format already exists")) -> None:
    """Parse, clean, classify, split and build the vocabulary."""
    from training.build_corpus import build, is_current

    if if_stale and is_current():
        typer.echo("corpus already built (use `poembot corpus build` to rebuild)")
        return
    try:
        summary = build()
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=1))


@corpus_app.command("stats")
def corpus_stats(as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                 prosody: bool = typer.Option(True, help="measure real-poem prosody too")) -> None:
    """Counts by form and split, vocabulary coverage, and real-poem prosody figures."""
    from training.build_corpus import stats

    try:
        result = stats(with_prosody=prosody)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {json.dumps(value, ensure_ascii=False)}")


@index_app.command("build")
def index_build(model: str = typer.Option(DEFAULT_MODEL, help="model folder"),
                out: Optional[str] = typer.Option(None, help="index folder (default: data dir)"),
                size: int = typer.Option(60_000, help="how many popular poems to index"),
                if_stale: bool = typer.Option(False, "--if-stale",
                                              help="skip when an index for this model exists")) -> None:
    """Encode the most popular corpus poems with the model's encoder (μ, float16)."""
    from model.index import META_FILE, build_index, default_index_dir, model_version

    if not (Path(model) / "config.json").exists():
        _fail(f"no model at {model}: train one with `poembot train` or use the shipped one")
    target = Path(out) if out else default_index_dir(model_version(model))
    if if_stale and (target / META_FILE).exists():
        typer.echo(f"index already built at {target}")
        return
    try:
        path = build_index(model, target, size=size)
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo(f"index written to {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
