"""A property-based fuzz run of the gateway's OpenAPI (schemathesis): valid and invalid
requests to every operation, through the real gateway with the services running, answer
without a 5xx. Bounded: a few examples per operation, sources only on loopback."""

from __future__ import annotations

import time

import schemathesis
from conftest import TEST_ADMIN_TOKEN
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from service_helpers import running_stack

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
EXAMPLES_PER_MODE = 10
# Generated connections point at loopback: a random host name would be a DNS lookup of the
# machine's network, and the run must not depend on (or wait for) anything outside.
LOOPBACK_FIELDS = {"host": "127.0.0.1", "endpoint_url": "http://127.0.0.1:9"}


def _keep_on_loopback(case) -> None:
    if "data-connections" in case.path and isinstance(case.body, dict):
        for field, value in LOOPBACK_FIELDS.items():
            if case.body.get(field) is not None:
                case.body[field] = value


def test_generated_requests_never_answer_5xx(settings):
    fast = settings.model_copy(update={"source_connect_timeout": 1.0, "sweep_seconds": 3600})
    started = time.monotonic()
    with running_stack(fast) as client:
        schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 25
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @hypothesis_settings(
                    max_examples=EXAMPLES_PER_MODE,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case) -> None:
                    _keep_on_loopback(case)
                    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])

                try:
                    fuzz()
                except Unsatisfiable:
                    # An operation without parameters or body has no invalid request to make.
                    assert mode is GenerationMode.NEGATIVE, operation.label
    assert time.monotonic() - started < 180
