"""
### Sync a data connection's catalog

Triggered by the Fabric gateway (`POST /api/data-connections/{id}/sync`) with
`conf = {"job_id": "sync_<id>_<ts>", "connection_id": <id>}`.

One deferrable task in pool **`sync_pool`** (3 slots, deferred tasks included) submits the
job to the sync service, then waits on the triggerer: the pool bounds the syncs running in
the service, and a waiting job holds no worker slot. A source that did not answer is tried
again per the job's retry policy (`FABRIC_SYNC_RETRY_*`, or the request's `retry`): the task
hands the job over again at its next attempt's time. An unreachable service is retried by
Airflow with exponential backoff; bad input or a source that refuses the credentials fails at
once. When the task finally fails, the Fabric job row is marked failed with the reason.
"""

from fabric_core.airflow_dag import job_dag
from fabric_core.job_kinds import SYNC

sync_data_connection = job_dag(SYNC, __doc__)
