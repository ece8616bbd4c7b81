"""One configuration for every Fabric process (env prefix ``FABRIC_``, optional ``.env``).

Nothing here runs at import time: call :func:`get_settings` (or build ``Settings()``
yourself in tests) when a process starts.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fabric_core.secret_files import (
    checked_secret,
    ensure_private_dir,
    read_or_create_secret,
    read_secret_if_present,
)
from fabric_core.source_policy import DEFAULT_HOSTS_DENY

SECRET_KEY_FILE = "secret.key"
PREVIOUS_SECRET_KEY_FILE = "secret.key.previous"
ADMIN_TOKEN_FILE = "admin.token"
SERVICE_TOKEN_FILE = "service.token"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FABRIC_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".fabric"))
    """Folder for the embedded SQLite metadata DB, local storage and the generated secret key."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata DB; default: SQLite file ``{home}/fabric.db``."""

    metadata_connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to connect to a server metadata DB (PostgreSQL) before giving up."""

    metadata_statement_timeout: float = Field(default=300.0, gt=0)
    """Seconds one metadata DB statement (lock waits included) may take on PostgreSQL; migrations
    run without it."""

    secret_key: str | None = None
    """Key that encrypts connection passwords; default: generated into ``{home}/secret.key``."""

    secret_key_previous: str | None = None
    """The key rotated out by ``fabric secrets rotate`` (passwords it encrypted still open
    while the processes restart); default: ``{home}/secret.key.previous`` if it exists."""

    admin_token: str | None = None
    """A bootstrap admin token for the gateway; default: generated into ``{home}/admin.token``."""

    service_token: str | None = None
    """The token the gateway, Airflow and the services present to the sync and dataset
    services; default: generated into ``{home}/service.token`` (shared by one home's processes)."""

    rate_limit: str = "600/minute"
    """Requests one token (or one client address without a valid token) may send to the
    gateway's API, in the ``limits`` notation (``600/minute``, ``20/second;1000/hour``)."""

    rate_limit_storage_url: str = "memory://"
    """Where request counts live: ``memory://`` (one gateway) or ``redis://host:6379/0``
    (gateway replicas share counts)."""

    cors_origins: list[str] = Field(default_factory=list)
    """Web origins allowed to call the API from a browser (JSON list); CORS is off when empty."""

    forwarded_allow_ips: list[str] = Field(default_factory=list)
    """Addresses of reverse proxies whose X-Forwarded-For is believed (JSON list). Empty: the
    header is ignored and the client address is the connection's."""

    orchestrator: Literal["local", "airflow"] = "local"
    """How jobs run: ``local`` pools inside the gateway, or ``airflow`` DAG runs."""

    auto_migrate: bool = True
    """Apply the Alembic migrations when a service starts (embedded mode)."""

    log_format: Literal["text", "json"] = "text"
    """How the processes write their logs to stderr: ``text`` lines, or ``json`` lines (one
    object a line, with ``service``, ``request_id``, ``job_id`` and ``dag_run_id``)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The least severe log level written."""

    bind_host: str = "127.0.0.1"
    """Address the services listen on."""

    gateway_port: int = 8004
    sync_port: int = 8005
    dataset_port: int = 8006

    sync_url: str | None = None
    """Base URL of the sync service; default ``http://127.0.0.1:{sync_port}``."""

    dataset_url: str | None = None
    """Base URL of the dataset service; default ``http://127.0.0.1:{dataset_port}``."""

    airflow_public_url: str = "http://localhost:8080"
    """Base URL of the Airflow UI, used for ``airflow_url`` in job answers."""

    airflow_url: str = "http://127.0.0.1:8080"
    """Where the gateway reaches Airflow's REST API."""

    airflow_username: str = "airflow"
    airflow_password: str = "airflow"

    airflow_database_url: str | None = None
    """Airflow's metadata DB for ``fabric up --airflow``; default SQLite in ``{home}/airflow``
    (PostgreSQL in tests and compose: SQLite gives lock errors under concurrent runs)."""

    airflow_dags_folder: Path | None = None
    """The DAGs Airflow loads; default the repository's ``airflow/dags``."""

    airflow_parallelism: int = 6
    """Task slots of Airflow's LocalExecutor (the default 32 spawns ~5.5 GB of workers)."""

    sync_pool_slots: int = 3
    """Sync jobs run at once (Airflow pool ``sync_pool``; local pool size)."""

    dataset_pool_slots: int = 2
    """Dataset jobs run at once (Airflow pool ``dataset_pool``; local pool size)."""

    sync_workers: int = 3
    """Background workers in one sync-service process."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body the gateway and the services read; larger ones get 413."""

    source_connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait when connecting to a source (name lookup, TCP connect and the
    server's handshake) before calling it unreachable."""

    source_read_timeout: float = Field(default=60.0, gt=0)
    """Seconds one source statement or read may take: PostgreSQL's ``statement_timeout``,
    MySQL's socket read/write timeouts, S3's read timeout, SQLite's query deadline."""

    sqlite_roots: list[Path] | None = None
    """Folders ``sqlite`` connections may open files under (JSON list); default
    ``[{home}/sqlite]``. Fabric's own files are refused even inside a root."""

    source_hosts_deny: list[str] = Field(default_factory=lambda: list(DEFAULT_HOSTS_DENY))
    """CIDRs and host names no source may be at, checked on resolved addresses at every
    connect (JSON list); default link-local and cloud-metadata addresses."""

    source_hosts_allow: list[str] = Field(default_factory=list)
    """When not empty, the only CIDRs and host names sources may be at (JSON list)."""

    storage_url: str | None = None
    """Where datasets are written: a local folder (default ``{home}/storage``) or
    ``s3://bucket/prefix`` (MinIO, SeaweedFS, AWS S3)."""

    s3_endpoint_url: str | None = None
    """S3 endpoint, e.g. ``http://127.0.0.1:9000`` for MinIO; unset for AWS."""

    s3_access_key_id: str | None = None
    """S3 access key; falls back to ``AWS_ACCESS_KEY_ID``."""

    s3_secret_access_key: str | None = None
    """S3 secret key; falls back to ``AWS_SECRET_ACCESS_KEY``."""

    s3_region: str = "us-east-1"

    dataset_batch_rows: int = 50_000
    """Rows read from a source per batch while building a dataset (bounds memory; Parquet row
    groups keep at least 100,000 rows whatever this is)."""

    dataset_part_rows: int = 2_000_000
    """Rows per Parquet part file."""

    dataset_workers: int = 2
    """Background workers in one dataset-service process."""

    job_heartbeat_seconds: float = 15.0
    """How often a worker marks its running job alive."""

    job_stale_seconds: float = 120.0
    """A running job with no heartbeat for this long lost its worker and is failed."""

    job_handover_seconds: float = 60.0
    """A job handed to a service but still queued this long (its service died before running
    it), or queued this long and never handed over (its gateway died), is handed over again."""

    sweep_seconds: float = 30.0
    """How often each process looks for jobs and versions left behind (see docs/reliability.md)."""

    metrics_db_timeout_seconds: float = Field(default=2.0, gt=0)
    """Longest wait, in seconds, for the metadata-DB queries behind the gateway's ``/metrics``
    (queue depth, pool occupancy); slower, the scrape reports ``fabric_metadata_db_up 0``."""

    sync_lock_timeout: float = 600.0
    """Seconds a sync job waits for another sync of the same connection to end."""

    job_poll_interval: float = 0.5
    """Seconds between status polls while a task waits for a service job."""

    circuit_failures: int = Field(default=5, ge=0)
    """Consecutive connection-level failures (unreachable, refused, timed out) of one source
    connection, Fabric service or Airflow after which its circuit opens: calls then fail at
    once instead of waiting for timeouts. 0 turns circuit breaking off."""

    circuit_reset_seconds: float = Field(default=60.0, gt=0)
    """How long an open circuit refuses calls before it lets one trial call through (which
    closes it, or opens it again for as long)."""

    task_retries: int = 4
    """Retries of an Airflow task whose orchestration failed (the service did not answer),
    with exponential backoff; the job's own attempts follow its retry policy instead."""

    task_retry_delay_seconds: float = 10.0
    """First delay before such a retry (doubling up to five minutes)."""

    public_url: str = "http://localhost:8004"
    """Base URL of the gateway as people reach it; alerts link to ``{public_url}/api/jobs/{id}``."""

    alert_dispatch_seconds: float = Field(default=5.0, gt=0)
    """How often the gateway's alert dispatcher looks for events to deliver."""

    alert_max_attempts: int = Field(default=10, ge=1, le=100)
    """Attempts to deliver one event to one channel before it is given up (shown on the
    channel as its last error)."""

    alert_retry_seconds: float = Field(default=10.0, gt=0)
    """Delay before the second attempt of a delivery; it doubles with each attempt..."""

    alert_retry_max_seconds: float = Field(default=600.0, gt=0)
    """...up to this many seconds between attempts."""

    alert_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds one delivery (HTTP request or SMTP conversation) may take."""

    alert_retention_days: float = Field(default=30.0, gt=0)
    """Outbox events whose deliveries all ended (sent or given up) are removed, with their
    deliveries, this many days after they were fanned out."""

    drift_retention_days: float = Field(default=90.0, gt=0)
    """Drift items resolved this many days ago are removed by the sync service's sweep;
    open ones stay until resolved."""

    smtp_host: str | None = None
    """SMTP server that sends the e-mail alerts; e-mail channels need it."""

    smtp_port: int = Field(default=587, ge=1, le=65535)
    """Port of the SMTP server (587: submission with STARTTLS)."""

    smtp_username: str | None = None
    """User to log in to the SMTP server as; no login when unset."""

    smtp_password: str | None = None
    """Password of ``smtp_username``."""

    smtp_from: str = "fabric@localhost"
    """The From address of alert e-mails."""

    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before logging in and sending."""
    sync_retry_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts a sync job gets in all when its error may pass (a source that did not
    answer); 1 means no retry. A request may ask for another number (``retry.attempts``)."""

    sync_retry_backoff_seconds: float = Field(default=10.0, ge=0)
    """Wait before a sync job's second attempt; doubled for each attempt after it."""

    sync_retry_max_delay_seconds: float = Field(default=300.0, ge=0)
    """Longest wait between two attempts of a sync job."""

    dataset_retry_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts a dataset job gets in all when its error may pass; 1 means no retry."""

    dataset_retry_backoff_seconds: float = Field(default=10.0, ge=0)
    """Wait before a dataset job's second attempt; doubled for each attempt after it."""

    dataset_retry_max_delay_seconds: float = Field(default=300.0, ge=0)
    """Longest wait between two attempts of a dataset job."""

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'fabric.db').resolve()}"

    @property
    def resolved_sqlite_roots(self) -> list[Path]:
        return self.sqlite_roots if self.sqlite_roots is not None else [self.home / "sqlite"]

    @property
    def storage_path(self) -> Path:
        """The local storage folder (used when ``storage_url`` is not an S3 URL)."""
        if self.storage_url and not self.storage_url.startswith("s3://"):
            return Path(self.storage_url.removeprefix("file://"))
        return self.home / "storage"

    @property
    def resolved_sync_url(self) -> str:
        return (self.sync_url or f"http://127.0.0.1:{self.sync_port}").rstrip("/")

    @property
    def resolved_dataset_url(self) -> str:
        return (self.dataset_url or f"http://127.0.0.1:{self.dataset_port}").rstrip("/")

    def service_url(self, service: str) -> str:
        """Base URL of the Fabric service named ``sync`` or ``dataset``."""
        urls = {"sync": self.resolved_sync_url, "dataset": self.resolved_dataset_url}
        return urls[service]

    def ensure_home(self) -> None:
        ensure_private_dir(self.home)
        self.storage_path.mkdir(parents=True, exist_ok=True)

    def resolved_secret_key(self) -> str:
        """The configured secret key, or the one generated into ``{home}/secret.key``."""
        return self._secret("FABRIC_SECRET_KEY", self.secret_key, SECRET_KEY_FILE)

    def resolved_secret_keys(self) -> list[str]:
        """The current key, then the previous one if a rotation left one (see crypto)."""
        keys = [self.resolved_secret_key()]
        if self.secret_key_previous is not None:
            previous = checked_secret("FABRIC_SECRET_KEY_PREVIOUS", self.secret_key_previous)
        else:
            previous = read_secret_if_present(self.home / PREVIOUS_SECRET_KEY_FILE)
        if previous and previous not in keys:
            keys.append(previous)
        return keys

    def secret_key_from_file(self) -> bool:
        """Whether the secret key lives in ``{home}/secret.key`` (FABRIC_SECRET_KEY unset)."""
        return self.secret_key is None

    def resolved_admin_token(self) -> str:
        """The bootstrap admin token: configured, or generated into ``{home}/admin.token``."""
        return self._secret("FABRIC_ADMIN_TOKEN", self.admin_token, ADMIN_TOKEN_FILE)

    def resolved_service_token(self) -> str:
        """The service token: configured, or generated into ``{home}/service.token``."""
        return self._secret("FABRIC_SERVICE_TOKEN", self.service_token, SERVICE_TOKEN_FILE)

    def _secret(self, name: str, configured: str | None, file_name: str) -> str:
        if configured is not None:
            return checked_secret(name, configured)
        return read_or_create_secret(self.home / file_name)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
