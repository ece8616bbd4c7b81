"""
### Build a unified dataset

Triggered by the Fabric gateway (`POST /api/datasets/unified`) with
`conf = {"job_id": "dataset_<name>_<ts>", "request": {...}}`.

One deferrable task in pool **`dataset_pool`** (2 slots, deferred tasks included) submits
the job to the dataset service, then waits on the triggerer: the pool bounds the builds
running in the service, and a waiting job holds no worker slot. An error that may pass (a
source that did not answer) is tried again per the job's retry policy
(`FABRIC_DATASET_RETRY_*`, or the request's `retry`). An unreachable service is retried by
Airflow with exponential backoff; bad input fails at once. A retry never builds a job twice.
When the task finally fails, the Fabric job row is marked failed with the reason.
"""

from fabric_core.airflow_dag import job_dag
from fabric_core.job_kinds import DATASET

create_unified_dataset = job_dag(DATASET, __doc__)
