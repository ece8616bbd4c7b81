"""A dataset's and its versions' states follow their job's end, in the job's transaction.

Whoever ends a dataset job (its worker, a cancel, the stale-job check, a task that failed
before any worker took the job) leaves no dataset ``queued`` or ``building`` behind it: a
version the job was writing becomes ``failed`` (its files are removed by the next clean-up),
and the dataset is ``ready`` again if it has a current version, else ``failed``.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabric_core.models import Dataset, DatasetVersion, Job

ACTIVE = ("queued", "running")
# A dataset being deleted: no build may start; its files go, then its rows (datasets.service).
DELETING = "deleting"


def dataset_job_ended(session: Session, job: Job, status: str) -> None:
    if status == "success" or job.dataset_name is None:
        return  # a success published its version in this same transaction
    dataset = session.scalar(select(Dataset).where(Dataset.name == job.dataset_name))
    if dataset is None:
        return
    session.execute(
        update(DatasetVersion)
        .where(DatasetVersion.job_id == job.id, DatasetVersion.status == "building")
        .values(status="failed", error=job.error)
        .execution_options(synchronize_session=False)
    )
    another = session.scalar(
        select(Job.id)
        .where(Job.dataset_name == dataset.name, Job.id != job.id, Job.status.in_(ACTIVE))
        .limit(1)
    )
    if another is None:  # else that build owns the dataset's state
        dataset.status = "ready" if dataset.current_version is not None else "failed"
