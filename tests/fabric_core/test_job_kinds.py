"""Job kinds: every declared kind is complete, and a kind declared only here runs through the
same runner as sync and dataset jobs (the recipe in docs/architecture.md)."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import pytest
from fabric_core import errors
from fabric_core.job_kinds import JOB_KINDS, SYNC, JobKind, job_kind
from fabric_core.job_runner import JobContext, run_job
from fabric_core.jobs import cancel_job, create_job, get_job
from fabric_core.polling import wait_for_job_end
from fabric_core.settings import Settings
from pydantic import BaseModel

SECRET = "pa'ss word/ü"


@pytest.mark.parametrize("kind", JOB_KINDS.values(), ids=JOB_KINDS)
def test_every_declared_kind_is_complete(kind: JobKind):
    work, secrets = kind.work_function(), kind.secrets_function()
    assert callable(kind.on_end_function()) and callable(kind.sweep_function())
    assert list(inspect.signature(work).parameters) == ["context", "params"]
    assert list(inspect.signature(secrets).parameters) == ["session", "params", "box"]
    request_fields = set(kind.request_schema.model_fields)
    assert request_fields == set(kind.params_schema.model_fields) | {"job_id"}
    settings = Settings()
    assert kind.pool_slots(settings) >= 1 and kind.workers(settings) >= 1
    assert kind.service_url(settings).startswith("http://127.0.0.1:")
    assert kind.process_path.startswith("/process-")
    assert job_kind(kind.name) is kind


def test_dag_conf_round_trips_the_params():
    for kind, params in [
        (SYNC, {"connection_id": 7}),
        (JOB_KINDS["dataset"], {"name": "d", "selection_mode": "tables", "selected_tables": [1]}),
    ]:
        conf = kind.dag_conf("job_1", params)
        assert conf["job_id"] == "job_1"
        assert kind.params_from_conf(conf) == params
    assert SYNC.dag_conf("sync_7_1", {"connection_id": 7}) == {
        "job_id": "sync_7_1",
        "connection_id": 7,
    }


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(errors.InvalidInputError, match="Unknown job kind 'nope'"):
        job_kind("nope")


# --- a third kind, declared only here -------------------------------------------------------


class EchoParams(BaseModel):
    text: str
    fail_with: str | None = None
    publish_itself: bool = False
    cancel_midway: bool = False


class EchoRequest(EchoParams):
    job_id: str


def echo_work(context: JobContext, params: EchoParams) -> dict:
    context.set_progress(0.5)
    if params.cancel_midway:
        cancel_job(context.runtime.session_factory, context.job_id)
    if params.fail_with == "fabric":
        raise errors.SourceError(f"the source said no to {SECRET}")
    if params.fail_with == "bug":
        raise KeyError(f"password={SECRET} missing")
    stats = {"echo": params.text.upper()}
    if params.publish_itself:
        with context.runtime.session_factory.begin() as session:
            context.succeed_in(session, {**stats, "published": True})
    return stats


def echo_secrets(session, params: EchoParams, box) -> list[str | None]:
    return [SECRET]


ECHO = JobKind(
    name="echo",
    id_prefix=lambda params: "echo",
    dag_id="echo_text",
    task_id="echo",
    pool="sync_pool",
    pool_slots_setting="sync_pool_slots",
    service="sync",
    workers_setting="sync_workers",
    process_path="/process-echo",
    params_schema=EchoParams,
    request_schema=EchoRequest,
    work=f"{__name__}:echo_work",
    secrets=f"{__name__}:echo_secrets",
)


def _run_echo(runtime, **params) -> tuple[bool, object]:
    with runtime.session_factory.begin() as session:
        job_id = create_job(
            session, kind=ECHO.name, id_prefix=ECHO.id_prefix(None), params=params
        ).id
    ran = run_job(ECHO, runtime, job_id)
    with runtime.session_factory() as session:
        return ran, get_job(session, job_id)


def test_a_new_kind_is_one_declaration_and_one_work_function(runtime):
    ran, job = _run_echo(runtime, text="hello")
    assert ran and job.status == "success"
    assert job.stats == {"echo": "HELLO"} and job.progress == 1.0 and job.attempts == 1
    assert run_job(ECHO, runtime, job.id) is False  # handed over again: not run twice


@pytest.mark.parametrize("failure", ["fabric", "bug"])
def test_every_error_is_recorded_with_the_kinds_secrets_redacted(runtime, failure):
    ran, job = _run_echo(runtime, text="x", fail_with=failure)
    assert ran and job.status == "failed"
    assert "***" in job.error and SECRET not in job.error and "pa'ss" not in job.error
    assert ("the source said no" in job.error) == (failure == "fabric")
    assert job.error.startswith("Unexpected error: KeyError") == (failure == "bug")


def test_work_that_publishes_its_own_success_is_not_ended_twice(runtime):
    ran, job = _run_echo(runtime, text="x", publish_itself=True)
    assert ran and job.status == "success" and job.stats["published"] is True


def test_a_job_cancelled_while_it_runs_stays_cancelled(runtime, caplog):
    with caplog.at_level(logging.INFO, logger="fabric_core.job_runner"):
        ran, job = _run_echo(runtime, text="x", cancel_midway=True)
    assert ran and (job.status, job.error) == ("cancelled", "Cancelled on request.")
    assert "stays cancelled" in caplog.text


def test_the_runner_loads_params_from_the_job_row(runtime):
    with runtime.session_factory.begin() as session:
        job_id = create_job(session, kind="echo", id_prefix="echo", params={"nope": 1}).id
    assert run_job(ECHO, runtime, job_id)
    with runtime.session_factory() as session:
        job = get_job(session, job_id)
    assert job.status == "failed" and "text" in job.error and "Field required" in job.error


# --- one error tree, one poll helper --------------------------------------------------------


def test_every_error_class_says_its_status_and_only_a_bare_fabric_error_is_a_500():
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.FabricError) and c is not errors.FabricError
    ]
    assert len(classes) >= 12
    assert all(400 <= c.status_code < 600 and c.status_code != 500 for c in classes)
    retryable = {c.__name__ for c in classes if c.retryable}
    assert retryable == {
        "SourceUnreachableError",
        "ServiceUnavailableError",
        "ServiceUnreachableError",
        "CircuitOpenError",
    }
    assert errors.FabricError.status_code == 500


def test_the_poll_helper_returns_the_end_and_times_out():
    answers = iter([{"id": "j", "status": "queued"}, {"id": "j", "status": "running"}])
    ended = {"id": "j", "status": "failed", "error": "x"}
    assert wait_for_job_end(lambda: next(answers, ended), poll_interval=0) == ended
    with pytest.raises(errors.ServiceUnavailableError, match=r"Job j still running after 0\.05 s"):
        wait_for_job_end(lambda: {"id": "j", "status": "running"}, poll_interval=0.01, timeout=0.05)


def test_a_kind_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SYNC.pool = "other"  # type: ignore[misc]


def test_work_stops_when_its_heartbeat_is_lost(runtime):
    context = JobContext(ECHO, runtime, "echo_lost")
    context.raise_if_cancelled()  # not cancelled, heartbeat fine
    context.heartbeat_lost.set()
    with pytest.raises(errors.JobCancelledError, match="heartbeat could not be recorded"):
        context.raise_if_cancelled(min_interval=60)
