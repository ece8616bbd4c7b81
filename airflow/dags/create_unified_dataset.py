"""
### Build a unified dataset

Triggered by the Fabric gateway (`POST /api/datasets/unified`) with
`conf = {"job_id": "dataset_<name>_<ts>", "request": {...}}`.

One task in pool **`dataset_pool`** (2 slots) submits the job to the dataset service and waits
for it to end while holding its slot, so the pool bounds the builds running in the service.
Unreachable services and 5xx answers are retried with exponential backoff; bad input fails at
once. A retry never builds a job twice. When the task finally fails, the Fabric job row is
marked failed with the reason.
"""

from fabric_core.airflow_dag import job_dag
from fabric_core.job_kinds import DATASET

create_unified_dataset = job_dag(DATASET, __doc__)
