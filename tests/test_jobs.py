"""The job protocol: round trips through JSON and stream fields, versioning, and request validation.

Pure Python: these tests also prove protocol.jobs and protocol.keys load without TensorFlow.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from protocol import jobs, keys
from protocol.jobs import (E_IMPOSSIBLE, E_INVALID, E_UNKNOWN_CHARS, EncodeJob, GenerateJob, JobFormatError,
                        Result, ValidationError)


def test_importing_jobs_does_not_load_tensorflow() -> None:
    code = "import sys, protocol.jobs, protocol.keys, protocol.connections; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_generate_job_round_trips_with_int_line_keys() -> None:
    job = GenerateJob(chat_id=42, user_id=7, form="五律", acrostic="春夏", keywords=["明月"],
                      fixed_lines={3: "山中一夜雨"}, like_texts=["甲乙丙丁戊"], latent=[0.5, -1.0],
                      tone_mode="hard", seed=123, n=3, reply={"message_id": 9})
    back = jobs.job_from_json(jobs.job_to_json(job))
    assert back == job
    assert isinstance(back, GenerateJob)
    assert list(back.fixed_lines) == [3]


def test_encode_job_and_result_round_trip_through_stream_fields() -> None:
    job = EncodeJob(texts=["一二三四五，六七八九十。"], reply={"chat": 1})
    entry = {k.encode(): v.encode() for k, v in jobs.job_fields(job).items()}   # as redis-py returns
    assert jobs.job_from_fields(entry) == job
    result = Result(job_id=job.job_id, ok=True, kind="encode", poems=[{"mu": [0.1, 0.2]}],
                    worker_id="w1", reply=job.reply)
    assert jobs.result_from_fields(jobs.result_fields(result)) == result
    assert jobs.result_from_json(jobs.result_to_json(result)).kind == "encode"


def test_unknown_version_is_a_clear_error() -> None:
    body = json.loads(jobs.job_to_json(GenerateJob()))
    body["v"] = 99
    with pytest.raises(JobFormatError, match="version 99"):
        jobs.job_from_json(json.dumps(body))
    with pytest.raises(JobFormatError, match="kind"):
        jobs.job_from_json(json.dumps({"v": jobs.PROTOCOL_VERSION, "kind": "dance", "job_id": "x"}))
    with pytest.raises(JobFormatError):
        jobs.job_from_json("not json")
    with pytest.raises(JobFormatError, match="no 'job' field"):
        jobs.job_from_fields({"other": "1"})


def test_unparseable_entry_still_yields_its_job_id() -> None:
    body = json.loads(jobs.job_to_json(GenerateJob(job_id="abc", reply={"m": 1})))
    body["v"] = 2
    entry = {keys.JOB_FIELD: json.dumps(body)}
    assert jobs.job_id_from_fields(entry) == "abc"
    assert jobs.reply_from_fields(entry) == {"m": 1}
    assert jobs.job_id_from_fields({keys.JOB_FIELD: "garbage"}) is None


def test_newer_optional_fields_are_ignored() -> None:
    body = json.loads(jobs.job_to_json(GenerateJob(job_id="j")))
    body["future_field"] = 1
    assert jobs.job_from_json(json.dumps(body)).job_id == "j"


def test_key_names_share_the_prefix() -> None:
    names = [keys.JOBS_STREAM, keys.RESULTS_STREAM, keys.DEAD_STREAM, keys.heartbeat_key("w"),
             keys.result_dedup_key("j")]
    assert all(n.startswith(keys.PREFIX + ":") for n in names)
    assert len(set(names)) == len(names)


def _code(job: GenerateJob, **kw) -> str:
    with pytest.raises(ValidationError) as err:
        jobs.validate_generate(job, **kw)
    return err.value.code


def test_validation_normalises_a_good_request() -> None:
    job = jobs.validate_generate(GenerateJob(form="七絕", acrostic="春 夏，秋冬", keywords=[" 明月 ", ""],
                                             fixed_lines={"1": "夏二三四五六七"}))
    assert job.form == "七绝"
    assert job.acrostic == "春夏秋冬"
    assert job.keywords == ["明月"]
    assert job.fixed_lines == {1: "夏二三四五六七"}


def test_validation_refusals() -> None:
    assert _code(GenerateJob(form="词")) == E_INVALID
    assert _code(GenerateJob(n=0)) == E_INVALID
    assert _code(GenerateJob(temperature=9.0)) == E_INVALID
    assert _code(GenerateJob(top_p=0.0)) == E_INVALID
    assert _code(GenerateJob(min_p=1.0)) == E_INVALID
    assert _code(GenerateJob(min_p=-0.1)) == E_INVALID
    assert _code(GenerateJob(tone_mode="loud")) == E_INVALID
    assert _code(GenerateJob(seed=-1)) == E_INVALID
    assert _code(GenerateJob(form="五绝", acrostic="一二三四五")) == E_IMPOSSIBLE
    assert _code(GenerateJob(form="五绝", keywords=["一二三四五六"])) == E_IMPOSSIBLE
    assert _code(GenerateJob(form="五绝", fixed_lines={4: "一二三四五"})) == E_IMPOSSIBLE
    assert _code(GenerateJob(form="五绝", fixed_lines={0: "一二三"})) == E_IMPOSSIBLE
    assert _code(GenerateJob(form="五绝", acrostic="春", fixed_lines={0: "一二三四五"})) == E_IMPOSSIBLE
    assert _code(GenerateJob(form="五绝", keywords=["一二三四五"] * 4, acrostic="甲")) == E_IMPOSSIBLE
    assert _code(GenerateJob(like_texts=["字" * (jobs.MAX_TEXT_CHARS + 1)])) == E_INVALID
    assert _code(GenerateJob(acrostic="春夏"), chars=lambda c: c != "夏") == E_UNKNOWN_CHARS


def test_validation_error_message_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="acrostic of 5 characters"):
        jobs.validate_generate(GenerateJob(form="五绝", acrostic="一二三四五"))
    with pytest.raises(ValidationError, match="cannot write 夏"):
        jobs.validate_generate(GenerateJob(acrostic="春夏"), chars=lambda c: c != "夏")


def test_validation_applies_the_script_converter() -> None:
    job = jobs.validate_generate(GenerateJob(acrostic="風"), chars=lambda c: c == "风",
                                 to_simplified=lambda s: s.replace("風", "风"))
    assert job.acrostic == "风"


def test_encode_validation() -> None:
    assert jobs.validate_encode(EncodeJob(texts=["一二三"])).texts == ["一二三"]
    with pytest.raises(ValidationError):
        jobs.validate_encode(EncodeJob(texts=[]))


def test_the_models_error_codes_are_the_wires() -> None:
    """The worker passes a model's RequestError code through to the bot unchanged (worker.request)."""
    from model import requests

    for name in ("E_INVALID", "E_IMPOSSIBLE", "E_UNKNOWN_CHARS", "E_UNKNOWN_STYLE", "E_INTERNAL", "E_NO_MODEL"):
        assert getattr(requests, name) == getattr(jobs, name), name
    assert requests.TONE_MODES == jobs.TONE_MODES


def test_a_request_built_in_process_has_a_jobs_defaults() -> None:
    """Training, the benchmarks and `poembot generate` build model requests directly: they ask for what
    a job with the same fields left unset asks for."""
    from dataclasses import fields

    from model.requests import CoupletRequest, PoemRequest

    for request, job in ((PoemRequest(), GenerateJob()), (CoupletRequest(), jobs.CoupletJob())):
        shared = [f.name for f in fields(request) if f.name != "request_id"]
        assert {n: getattr(request, n) for n in shared} == {n: getattr(job, n) for n in shared}, type(request)
