"""
### Sync a data connection's catalog

Triggered by the Fabric gateway (`POST /api/data-connections/{id}/sync`) with
`conf = {"job_id": "sync_<id>_<ts>", "connection_id": <id>}`.

One task in pool **`sync_pool`** (3 slots) submits the job to the sync service and waits for
it to end while holding its slot, so the pool bounds the syncs running in the service.
Unreachable services and 5xx answers are retried with exponential backoff; bad input or a
source that refuses the credentials fails at once. A retry never runs a job twice. When the
task finally fails, the Fabric job row is marked failed with the reason.
"""

from fabric_core.airflow_dag import job_dag
from fabric_core.job_kinds import SYNC

sync_data_connection = job_dag(SYNC, __doc__)
