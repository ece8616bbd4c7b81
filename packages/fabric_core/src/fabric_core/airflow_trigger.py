"""The trigger a Fabric DAG task defers to: it polls the job's status at its service from
Airflow's triggerer, so a waiting job holds no worker slot.

Runs in the triggerer process (it must be importable there: fabric_core is installed next to
Airflow). Light on purpose: httpx, Airflow's trigger base and the status rule of
:mod:`fabric_core.polling`; the service token is looked up here, never stored in the trigger's
arguments (Airflow shows those in its API and UI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from fabric_core.bearer import bearer_header
from fabric_core.polling import needs_hand_over
from fabric_core.schemas import TERMINAL_STATUSES


class FabricJobTrigger(BaseTrigger):
    """Fires once, with one of these events:

    - ``{"event": "ended", "status", "error"}``: the job ended (success, failed, cancelled);
    - ``{"event": "hand_over"}``: the job is queued and must be handed to its service again
      (its next attempt is due, or the service that took it died before running it);
    - ``{"event": "unreachable", "error"}``: the service did not answer for
      ``handover_seconds`` (the task fails with a retryable error: Airflow's task retries).
    """

    def __init__(
        self,
        *,
        job_id: str,
        service_url: str,
        connection_id: str,
        handed_over_at: float,
        poll_interval: float,
        handover_seconds: float,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.service_url = service_url
        self.connection_id = connection_id
        self.handed_over_at = handed_over_at
        self.poll_interval = poll_interval
        self.handover_seconds = handover_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "service_url": self.service_url,
                "connection_id": self.connection_id,
                "handed_over_at": self.handed_over_at,
                "poll_interval": self.poll_interval,
                "handover_seconds": self.handover_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        token = await service_token(self.connection_id)
        path = f"/status/{quote(self.job_id, safe='')}"
        silent_since: float | None = None
        async with httpx.AsyncClient(
            base_url=self.service_url, headers=bearer_header(token), timeout=10.0
        ) as client:
            while True:
                try:
                    response = await client.get(path)
                    if response.status_code >= 500:
                        raise httpx.HTTPStatusError(
                            f"answered {response.status_code}",
                            request=response.request,
                            response=response,
                        )
                except httpx.HTTPError as exc:
                    # A service restarting: wait as long as a hand-over may take.
                    silent_since = silent_since or time.monotonic()
                    if time.monotonic() - silent_since > self.handover_seconds:
                        yield TriggerEvent(
                            {
                                "event": "unreachable",
                                "error": f"Fabric service at {self.service_url} did not answer "
                                f"({type(exc).__name__}: {exc}).",
                            }
                        )
                        return
                    await asyncio.sleep(self.poll_interval)
                    continue
                silent_since = None
                if response.status_code >= 400:  # unknown job, refused token: will not pass
                    yield TriggerEvent(
                        {
                            "event": "ended",
                            "status": "failed",
                            "error": f"GET {path} refused ({response.status_code}): "
                            f"{response.text[:500]}",
                        }
                    )
                    return
                status = response.json()
                if status["status"] in TERMINAL_STATUSES:
                    yield TriggerEvent(
                        {"event": "ended", "status": status["status"], "error": status["error"]}
                    )
                    return
                if needs_hand_over(status, self.handed_over_at, self.handover_seconds, time.time()):
                    yield TriggerEvent({"event": "hand_over"})
                    return
                await asyncio.sleep(self.poll_interval)


async def service_token(connection_id: str) -> str:
    """The service token: the password of the service's Airflow connection, else Fabric's
    settings (FABRIC_SERVICE_TOKEN or ``{FABRIC_HOME}/service.token``)."""
    try:
        from airflow.sdk import Connection

        connection = await Connection.async_get(connection_id)
        if connection.password:
            return connection.password
    except Exception:  # not set up: the settings decide, as for the task itself
        pass
    from fabric_core.settings import Settings

    return await asyncio.to_thread(lambda: Settings().resolved_service_token())
