"""Jobs from the wire as the model's own requests, and the model's answers as Results.

The bot sends a poem's request whole (GenerateJob.spec). The worker checks each job once here —
protocol.jobs' validate_* with the generator's vocabulary, script conversion and styles, as the model
itself did before it had its own API — maps it to a model.requests request (request_id = job_id) and
maps each Answer back to a Result carrying the job's reply and spec, so the bot gets back exactly what
it asked for. The model never reads the wire format.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Sequence

from model.requests import Answer, CoupletRequest, EncodeRequest, PoemRequest, Request
from protocol.jobs import (E_NO_CI_MODEL, E_NO_COUPLET_MODEL, CoupletJob, EncodeJob, GenerateJob, Job, Result,
                           ValidationError, validate_couplet, validate_encode, validate_generate)
from protocol.spec import SpecError, from_wire
from verse import script

# The fields a GenerateJob and a PoemRequest share (all of the request's but its id).
POEM_FIELDS = tuple(f.name for f in fields(PoemRequest) if f.name != "request_id")


def unpack_spec(job: GenerateJob) -> GenerateJob:
    """job with its spec's values in its flat fields; a job without a spec is left as it is.

    Raises protocol.spec.SpecError for a spec this build cannot read. The script is not passed on:
    poems are written simplified and the bot shows them in the reader's script."""
    if job.spec is None:
        return job
    spec = from_wire(job.spec)
    job.form, job.title, job.acrostic, job.style = spec.form.name, spec.title, spec.acrostic, spec.style
    job.tune = spec.tune
    job.keywords, job.like_texts, job.fixed_lines = list(spec.keywords), list(spec.like_texts), spec.kept
    sampling = spec.sampling
    job.temperature, job.top_p, job.min_p = sampling.temperature, sampling.top_p, sampling.min_p
    job.best_of, job.latent_scale = sampling.best_of, sampling.latent_scale
    job.seed = spec.seed if spec.seed is not None else job.seed
    return job


def _simplified(text: str) -> str:
    return script.to_simplified(text, lenient=True)


def _checked(job: GenerateJob, generator: Any) -> GenerateJob:
    """validate_generate against what generator can write: its vocabulary, script and styles (a
    stand-in generator without them gets the shape checks only)."""
    vocab = getattr(generator, "vocab", None)
    styles = getattr(generator, "styles", None)
    return validate_generate(job, chars=vocab.__contains__ if vocab is not None else None,
                             to_simplified=getattr(generator, "to_simplified", None),
                             styles=styles.ids if styles is not None else None)


def model_request(job: Job, generator: Any) -> Request:
    """The job checked once and mapped to the model's request. Raises ValidationError for a job the
    worker refuses, protocol.spec.SpecError for a spec it cannot read."""
    if isinstance(job, GenerateJob):
        job = _checked(unpack_spec(job), generator)
        return PoemRequest(request_id=job.job_id, **{name: getattr(job, name) for name in POEM_FIELDS})
    if isinstance(job, CoupletJob):
        validate_couplet(job, to_simplified=_simplified)
        return CoupletRequest(request_id=job.job_id, first=job.first, theme=list(job.theme), n=job.n,
                              best_of=job.best_of, temperature=job.temperature, seed=job.seed)
    validate_encode(job)
    return EncodeRequest(request_id=job.job_id, texts=list(job.texts))


def check_poem(request: PoemRequest, generator: Any) -> PoemRequest:
    """A request built in-process (`poembot generate`) checked and normalised as a job would be;
    raises ValidationError."""
    job = _checked(GenerateJob(**{name: getattr(request, name) for name in POEM_FIELDS}), generator)
    return PoemRequest(request_id=request.request_id, **{name: getattr(job, name) for name in POEM_FIELDS})


def echo(job: Job, result: Result) -> Result:
    """result carrying job's spec back to the bot."""
    if isinstance(job, GenerateJob):
        result.spec = job.spec
    return result


def result_of(job: Job, answer: Answer) -> Result:
    """The model's answer to job as the Result the bot reads: its reply and spec echoed."""
    return echo(job, Result(job_id=job.job_id, ok=answer.ok, poems=answer.poems, error_code=answer.error_code,
                            error_message=answer.error_message, kind=job.kind, reply=job.reply))


def refused(job: Job, code: str, message: str) -> Result:
    return echo(job, Result.error(job.job_id, code, message, kind=job.kind, reply=job.reply))


def serve(jobs: Sequence[Job], generator: Any, couplets: Any = None, ci: Any = None) -> list[Result]:
    """Results for jobs: each checked and mapped, couplets to the couplet writer (E_NO_COUPLET_MODEL
    without one), ci (a poem request with a tune) to the ci writer (E_NO_CI_MODEL without one), poems
    and encodings to the generator, the answers mapped back. A refused job's Result comes at once; a
    job the model leaves unanswered has none (it stays pending)."""
    results: list[Result] = []
    poems: list[tuple[Job, Request]] = []
    pairs: list[tuple[Job, Request]] = []
    cis: list[tuple[Job, Request]] = []
    for job in jobs:
        if isinstance(job, CoupletJob) and couplets is None:
            results.append(refused(job, E_NO_COUPLET_MODEL, "this worker has no couplet model"))
            continue
        try:
            request = model_request(job, generator)
        except (ValidationError, SpecError) as exc:
            code = exc.code if isinstance(exc, ValidationError) else exc.result_code
            results.append(refused(job, code, exc.message))
            continue
        if getattr(request, "tune", ""):
            if ci is None:
                results.append(refused(job, E_NO_CI_MODEL, "this worker has no ci model"))
                continue
            cis.append((job, request))
        else:
            (pairs if isinstance(job, CoupletJob) else poems).append((job, request))
    answers = list(generator.run([r for _, r in poems])) if poems else []
    answers += list(couplets.run([r for _, r in pairs])) if pairs else []
    answers += list(ci.generate([r for _, r in cis])) if cis else []
    by_id = {a.request_id: a for a in answers}
    for job, _ in poems + pairs + cis:
        # By id, never by position: a generator that drops or reorders an answer must not hand one
        # user another's poem.
        if (answer := by_id.get(job.job_id)) is not None:
            results.append(result_of(job, answer))
    return results
