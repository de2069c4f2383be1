"""Service configuration, read from the environment (prefix ``DMASK_``).

With no configuration at all everything runs on one machine: SQLite and a local
folder under ``DMASK_HOME`` and an in-process worker. Setting the URLs below
switches the same code to PostgreSQL, Redis/Celery and S3/MinIO.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DMASK_", env_file=None, extra="ignore")

    # --- where state lives on the embedded default -------------------------------------------
    home: Path = Field(default=Path("./var"), description="Folder for embedded state (SQLite, local store).")

    # --- database ------------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db. "
        "Default: SQLite in DMASK_HOME.",
    )

    # --- jobs ----------------------------------------------------------------------------------
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (redis://host:6379/0). Unset: jobs run in an in-process worker thread.",
    )
    queue_name: str = Field(default="gpu", description="Celery queue the masking workers consume.")
    visibility_timeout_s: int = Field(
        default=4 * 3600, description="Redis visibility timeout, above the longest job."
    )
    max_deliveries: int = Field(
        default=3, description="Deliveries of one job before it is dead-lettered as failed."
    )
    worker_concurrency: int = Field(
        default=1, ge=1, description="Worker processes per `dmask worker` (1 per GPU)."
    )
    worker_heartbeat_file: Path | None = Field(
        default=None,
        description="File the worker touches every few seconds; liveness probes read its age. "
        "Default: DMASK_HOME/worker.heartbeat.",
    )
    worker_heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between heartbeat touches."
    )
    worker_metrics_port: int | None = Field(
        default=None, description="Serve the worker's Prometheus metrics (job durations) on this port."
    )
    job_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="A running job whose worker has not reported for this long is presumed dead "
        "and requeued.",
    )
    reconcile_interval_s: float = Field(default=30.0, gt=0, description="Seconds between reconciler passes.")
    broker_check_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between a worker's checks of the broker (reachable? lost its queues?) and of "
        "running jobs past their lease: a broker restart or a dead worker's job is acted on within this.",
    )
    requeue_after_s: float = Field(
        default=3600.0,
        gt=0,
        description="A job still queued after this long is re-sent to the broker (a lost message); "
        "a broker restart is detected within broker_check_interval_s and resends everything queued.",
    )
    embedded_poll_s: float = Field(default=1.0, gt=0, description="In-process worker: idle poll interval.")
    worker_shutdown_timeout_s: float | None = Field(
        default=None,
        ge=0,
        description="On SIGTERM a worker stops taking jobs and lets the running one finish for this many "
        "seconds; past it the job is put back in the queue (not counted as a delivery) for another worker. "
        "Unset: the running job always finishes (keep the orchestrator's grace period above the longest "
        "job). Set it below the grace period.",
    )
    infra_retry_delay_s: float = Field(
        default=10.0,
        gt=0,
        description="A job interrupted because the database or object store was unreachable goes back "
        "to the queue (not counted as a delivery) and is re-sent after this many seconds.",
    )
    orphan_grace_s: float = Field(
        default=3600.0,
        ge=0,
        description="The orphan sweeper leaves objects and unfinished uploads younger than this alone "
        "(an upload or a job may still be about to record them).",
    )
    orphan_sweep_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds between orphan sweeps by the reconciler (0: never; `dmask storage sweep` "
        "runs one by hand).",
    )

    # --- object storage -------------------------------------------------------------------------
    s3_endpoint: str | None = Field(
        default=None, description="host:port of an S3 store. Unset: local folder store."
    )
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    s3_secure: bool = Field(default=True, description="Use TLS to reach the S3 store.")
    s3_ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the S3 store's certificate (a private CA). "
        "Unset: the system trust store.",
    )
    s3_region: str | None = Field(
        default=None, description="S3 region; set it so presigning needs no round trip (us-east-1 if unset)."
    )
    s3_public_endpoint: str | None = Field(
        default=None,
        description="host:port clients use for presigned download links when it differs from s3_endpoint.",
    )
    s3_part_size_mb: int = Field(
        default=8,
        ge=5,
        description="Multipart part size for streamed uploads (bounds API memory per upload).",
    )
    bucket_originals: str = Field(default="dmask-originals", description="Bucket of uploaded originals.")
    bucket_artifacts: str = Field(
        default="dmask-artifacts", description="Bucket of masked files and metrics."
    )
    create_buckets: bool = Field(default=True, description="Create missing buckets at start-up.")
    sse_c_key: SecretStr | None = Field(
        default=None, description="Base64 32-byte key: originals are encrypted at rest with SSE-C."
    )
    presign_ttl_s: int = Field(default=300, description="Lifetime of artifact download links.")
    delete_originals: bool = Field(default=True, description="Delete an original once it is masked.")

    # --- input limits --------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=2 * 1024**3, description="Byte cap of one upload (413 past it).")
    max_pixels: int = Field(default=64_000_000, description="Pixel cap of one photo frame.")
    max_video_seconds: float = Field(default=900.0, description="Duration cap of one video.")

    # --- model ---------------------------------------------------------------------------------
    device: Literal["cpu", "cuda", "auto"] = Field(
        default="auto", description="Torch device of the model; auto picks CUDA when the worker sees one."
    )
    batch_size: int = Field(default=16, ge=1, description="Frames per model batch.")

    # --- security ------------------------------------------------------------------------------
    hmac_key: SecretStr = Field(
        default=SecretStr("dev-only-change-me"),
        description="Key for pseudonyms and DICOM UID remapping (keyed HMAC). Set in production.",
    )
    rate_limit_per_minute: int = Field(
        default=600, description="Requests per client per minute (429 past it)."
    )

    # --- sign-in: OpenID Connect for people, OAuth 2.0 bearer tokens for systems ---------------
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the hospital's OpenID provider (discovery at "
        "{issuer}/.well-known/openid-configuration). Unset: API keys and local sign-in only.",
    )
    oidc_client_id: str | None = Field(default=None, description="Client id of /ui at the OpenID provider.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Client secret of /ui at the OpenID provider (confidential client)."
    )
    oidc_roles_claim: str = Field(
        default="roles", description="Claim of the ID token (or access token) that lists a person's roles."
    )
    oidc_role_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON object: provider role -> our scopes, e.g. {"compliance": ["audit:read"], '
        '"clinician": ["media:read"]}. A person with no mapped role is refused.',
    )
    oidc_tenant_claim: str = Field(
        default="tenant", description="Claim naming the caller's tenant (the client whose media it sees)."
    )
    jwt_audience: str | None = Field(
        default=None,
        description="Expected `aud` of API bearer tokens from the issuer. Unset: bearer JWTs are refused.",
    )

    # --- integration (DICOMweb, FHIR, webhooks) ----------------------------------------------
    public_url: str | None = Field(
        default=None,
        description="Base of every absolute URL handed out (STOW-RS RetrieveURL, QIDO RetrieveURL, FHIR "
        "links, webhook links), e.g. https://dmask.hospital.org. Never taken from the Host header. "
        "Unset: http://DMASK_HOST:DMASK_PORT.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Accept webhook endpoints on loopback/private addresses, over http or https "
        "(on-premises receivers, tests). Default: only https URLs that resolve to public addresses.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts of one webhook message before it is marked failed."
    )
    webhook_retry_base_s: float = Field(
        default=5.0,
        gt=0,
        description="First webhook retry delay (seconds); each further retry waits twice as long "
        "(capped at 10 hours).",
    )

    # --- API process ---------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="`dmask serve` bind address.")
    port: int = Field(default=8000, description="`dmask serve` port.")
    auto_migrate: bool | None = Field(
        default=None,
        description="Apply database migrations when the API starts. Default: only on the embedded SQLite "
        "database (elsewhere run `dmask db upgrade` once per release).",
    )
    log_level: str = Field(default="info", description="Log level of the API and worker.")

    # --- audit / retention -------------------------------------------------------------------------
    audit_retention_days: int = Field(
        default=6 * 365,
        description="How long audit events must be kept (documented policy; rows are append-only).",
    )
    artifact_retention_days: int | None = Field(
        default=None, description="Delete masked artifacts after N days."
    )

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'dmask.sqlite3').resolve()}"

    @property
    def public_base(self) -> str:
        """The configured public base URL without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def heartbeat_path(self) -> Path:
        return self.worker_heartbeat_file or (self.home / "worker.heartbeat")

    @property
    def migrate_on_start(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url is None

    @property
    def embedded(self) -> bool:
        """True when jobs run in-process (no broker configured)."""
        return self.broker_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
