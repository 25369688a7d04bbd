"""A job's spec as the model's own arguments: the worker's side of protocol.spec.

The bot sends what the user asked for whole (GenerateJob.spec); the generator reads the job's flat
fields. model_job() fills them from the spec, so the model never reads the wire's request shape, and
echo() puts the spec on the job's result, so the bot gets back exactly what it asked for.
"""
from __future__ import annotations

from protocol.jobs import GenerateJob, Job, Result
from protocol.spec import from_wire


def model_job(job: GenerateJob) -> GenerateJob:
    """job with its spec's values in the generator's fields; a job without a spec is left as it is.

    Raises protocol.spec.SpecError for a spec this build cannot read. The script is not passed on:
    poems are written simplified and the bot shows them in the reader's script."""
    if job.spec is None:
        return job
    spec = from_wire(job.spec)
    job.form, job.title, job.acrostic, job.style = spec.form.name, spec.title, spec.acrostic, spec.style
    job.keywords, job.like_texts, job.fixed_lines = list(spec.keywords), list(spec.like_texts), spec.kept
    sampling = spec.sampling
    job.temperature, job.top_p, job.min_p = sampling.temperature, sampling.top_p, sampling.min_p
    job.best_of, job.latent_scale = sampling.best_of, sampling.latent_scale
    job.seed = spec.seed if spec.seed is not None else job.seed
    return job


def echo(job: Job, result: Result) -> Result:
    """result carrying job's spec back to the bot."""
    if isinstance(job, GenerateJob):
        result.spec = job.spec
    return result
