"""Load a model folder for generation (load_generator: what the worker serves), and `poembot generate`:
write poems on this machine, without Redis or a worker.

The Typer command in poembot_cli.py passes its options straight to generate_cli.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from tqdm import tqdm

from model.requests import PoemRequest
from protocol.settings import PRETRAINED_DIR
from protocol.sampling import DEFAULT as SAMPLING
from protocol.settings import ModelSettings

log = logging.getLogger(__name__)

MAX_CLI_N = 1000          # the command line may ask for many; the bot keeps a job to protocol.jobs.MAX_N
MAX_N = 10                # poems per request, as many as a bot's job may ask (protocol.jobs.MAX_N)
JOBS_PER_CALL = 16        # requests of MAX_N poems decoded per Generator call (and per progress step)


def gpu_memory_growth() -> None:
    """Let TensorFlow take GPU memory as it needs it rather than all of it at start, so a GPU
    can hold more than one worker (or a worker beside a training run)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:          # already initialised by an earlier import
            log.warning("GPU memory growth not set: %s", exc)


def load_generator(model_dir: str | Path, jit_compile: bool | None = None,
                   settings: ModelSettings | None = None) -> Any:
    """The model in model_dir, ready to serve; XLA, styles and the theme index as settings says (the
    worker passes the protocol.settings.WorkerSettings it runs with; by default, read from the
    environment)."""
    settings = settings or ModelSettings.from_env()
    gpu_memory_growth()
    from model.decode import Generator
    from search.themes import ThemeWatch, find_themes
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"no model at {model_dir}: set POEMBOT_MODEL_DIR or train one")
    if jit_compile is None:
        jit_compile = settings.xla
    # Themes come from the theme index (no corpus needed); the corpus loads only to derive a
    # missing novelty table.
    generator = Generator.load(model_dir, jit_compile=jit_compile, styles_dir=settings.styles_dir)
    if generator.styles:
        log.info("styles: %s", ", ".join(generator.styles.ids))
    # Not built yet (`poembot run` builds it in the background): a running worker takes it up when it appears.
    themes = find_themes(model_dir, settings.index_path)
    generator.themes = themes if themes is not None else ThemeWatch(model_dir, settings.index_path)
    return generator


def job_sizes(n: int) -> list[int]:
    """n poems as requests of at most MAX_N each."""
    return [min(MAX_N, n - start) for start in range(0, n, MAX_N)]


def generate_cli(form: str = "七绝", acrostic: str = "", keywords: str | list[str] = "",
                 like: list[str] | str | None = None, n: int = 1, seed: int | None = None,
                 traditional: bool = False, json_out: bool = False, model_dir: str | Path | None = None,
                 tone: str = "soft", rhyme: str = "pingshui", temperature: float | None = None,
                 top_p: float | None = None, max_repeat: int = 2, novelty: bool = True,
                 fixed: dict[int, str] | None = None, style: str = "", title: str = "",
                 out: TextIO | None = None, err: TextIO | None = None,
                 check: Callable[[PoemRequest, Any], PoemRequest] | None = None, tune: str = "") -> int:
    """Print n poems (plain text, or a JSON list with --json); return the process exit code.

    check(request, generator): the checks a worker runs on a job, which normalise what a user typed
    (form aliases, traditional characters); `poembot generate` passes worker.request.check_poem. A
    ValueError it raises is printed. Without it the model's own checks alone apply.

    keywords: a list, or one string split on spaces/commas into words ("春风 明月").
    temperature, top_p: None takes protocol/sampling.py's defaults, as the bot does.
    tune: a 词牌 name, alias or traditional spelling: 词 of its main form from the ci model beside
    model_dir (model.ci.find_ci_dir) instead of poems.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    model_dir = Path(model_dir) if model_dir else PRETRAINED_DIR
    if not (model_dir / "config.json").exists():
        print(f"poembot: no model at {model_dir}: train one with `poembot train` "
              f"or pass --model DIR", file=err)
        return 2
    if isinstance(keywords, str):
        keywords = [k for k in keywords.replace("，", " ").replace(",", " ").split() if k]
    if isinstance(like, str):
        like = [like]
    if not 1 <= n <= MAX_CLI_N:
        print(f"poembot: -n must be between 1 and {MAX_CLI_N}", file=err)
        return 2
    ci_dir = None
    if tune:
        from model.ci import CI_FORM, find_ci_dir
        from verse import tunes

        found = tunes.get(tune)
        ci_dir = find_ci_dir(model_dir)
        if found is None or ci_dir is None:
            print(f"poembot: no tune {tune!r}; `poembot tunes list` shows them" if found is None
                  else f"poembot: no ci model beside {model_dir} (poembot ci train)", file=err)
            return 2
        form, tune = CI_FORM, found.name
    # One seed makes the whole run reproducible: request k of the run draws from seed + k.
    requests = [PoemRequest(form=form, acrostic=acrostic, keywords=list(keywords), like_texts=list(like or []),
                            n=size, seed=None if seed is None else seed + k, traditional=traditional,
                            tone_mode=tone, rhyme=rhyme,
                            temperature=SAMPLING.temperature if temperature is None else temperature,
                            top_p=SAMPLING.top_p if top_p is None else top_p,
                            max_repeat=max_repeat, novelty=novelty, fixed_lines=dict(fixed or {}),
                            style=style, title=title, tune=tune)
                for k, size in enumerate(job_sizes(n))]

    if ci_dir is not None:
        from model.ci import CiWriter
        generator = CiWriter.load(ci_dir)     # the tune was checked above; a ci takes no style or example
    else:
        generator = load_generator(model_dir)     # TensorFlow loads here, after the cheap checks
    if check is not None and ci_dir is None:
        try:
            requests = [check(request, generator) for request in requests]
        except ValueError as exc:
            print(f"poembot: {exc}", file=err)
            return 1
    poems: list[dict] = []
    with tqdm(total=n, unit="poem", file=err, disable=n <= MAX_N, desc="writing") as bar:
        for start in range(0, len(requests), JOBS_PER_CALL):
            for answer in generator.generate(requests[start:start + JOBS_PER_CALL]):
                if not answer.ok:
                    print(f"poembot: {answer.error_message}", file=err)
                    return 1
                poems += answer.poems
                bar.update(len(answer.poems))
    if json_out:
        print(json.dumps(poems, ensure_ascii=False), file=out)
        return 0
    for k, poem in enumerate(poems):
        if k:
            print(file=out)
        if poem.get("tune"):
            print(f"【{poem['tune']}】" + (f"{poem['title']}" if poem.get("title") else ""), file=out)
        elif poem.get("title"):
            print(f"《{poem['title']}》", file=out)
        print(poem["text"], file=out)
        notes = [poem["form"], poem.get("pattern") or "", f"押{poem['rhyme_group']}" if poem.get("rhyme_group")
                 else poem.get("rhyme_kind") or "", f"合律{round(100 * (poem.get('tone_rate') or 0))}%",
                 f"seed {poem['seed']}#{poem['index']}", f"style {poem['style']}" if poem.get("style") else ""]
        print("  — " + " · ".join(x for x in notes if x), file=out)
    return 0
