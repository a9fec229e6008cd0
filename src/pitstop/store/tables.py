"""The store's tables (SQLAlchemy Core). Alembic migrations in `migrations/` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from pitstop.store.types import JSONDocument, UTCDateTime

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

models = Table(
    "models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("task", String(20), nullable=False),
    Column("target", String(200), nullable=False),
    Column("time_column", String(200)),
    Column("features", JSONDocument),
    Column("id_columns", JSONDocument, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    # pickle (joblib) versions load only when this is true (migration 0005)
    Column("allow_pickle", Boolean, nullable=False),
    # What it is for, free `key: value` strings, and while it is archived when, by whom and why
    # (migration 0006)
    Column("description", Text),
    Column("metadata", JSONDocument),
    Column("archived_at", UTCDateTime),
    Column("archived_by", String(200)),
    Column("archive_reason", Text),
    # the per-request loss's spec, null for the task's default; a classifier's classes (migration 0008)
    Column("loss", String(200)),
    Column("classes", JSONDocument),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("format", String(10), nullable=False),
    Column("uri", Text, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("columns", JSONDocument, nullable=False),
    Column("time_column", String(200)),
    Column("time_min", UTCDateTime),
    Column("time_max", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("name", "version", name="uq_datasets_name_version"),
    UniqueConstraint("name", "sha256", name="uq_datasets_name_sha256"),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text, nullable=False),  # relative to the artifact store
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("lineage", JSONDocument, nullable=False),
    Column("gate_result", JSONDocument),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    # How the artifact loads (migration 0005): `skops` with only the `trusted_types` fixed at
    # registration, or `joblib` (pickle); `signature` is made with a key the store does not hold.
    Column("format", String(10), nullable=False),
    Column("trusted_types", JSONDocument),
    Column("signature", JSONDocument),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Id, ForeignKey("models.id"), primary_key=True),
    Column("alias", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime, nullable=False),
    Column("model_id", Id, ForeignKey("models.id")),
    Column("rollout_id", Id),
    Column("kind", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("from_state", String(200)),
    Column("to_state", String(200)),
    Column("rule", String(200)),
    Column("reason", Text),
    Column("data", JSONDocument, nullable=False),
    Index("ix_events_model_time", "model_id", "id"),
)

# -- serving (issue 5) ---------------------------------------------------------------------------
# Predictions and labels are high-volume: times are float epoch seconds (event time from the
# injected clock), so aggregation by time is plain arithmetic on both SQLite and PostgreSQL.

routing_tables = Table(
    "routing_tables",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("champion", Integer, nullable=False),
    Column("challenger", Integer),
    Column("challenger_share", Float, nullable=False),
    Column("shadow", Integer),
    Column("salt", String(64), nullable=False),
    Column("rollout_id", Id),
    Column("step", Integer),
    Column("standby", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_routing_tables_model_version"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, nullable=False),
    Column("request_id", String(200), nullable=False),
    Column("user_id", String(200)),
    Column("time", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("arm", String(20), nullable=False),
    Column("role", String(10), nullable=False),
    Column("routing_version", Integer, nullable=False),
    Column("bucketed_by", String(10), nullable=False),
    Column("prediction", Float),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text),
    # a multiclass prediction's probabilities, in the model's class order (migration 0008)
    Column("probabilities", JSONDocument),
    Index("ix_predictions_model_routing", "model_id", "routing_version"),
    Index("ix_predictions_model_time", "model_id", "time"),
    # No index by request_id: ids are random, so it made every record dirty a page of its own once the
    # table was large (migration 0004). Queries reach predictions by routing version or time.
)

labels = Table(
    "labels",
    metadata,
    Column("model_id", Id, primary_key=True),
    Column("request_id", String(200), primary_key=True),
    Column("value", Float, nullable=False),
    Column("time", Float, nullable=False),
    Column("received_at", Float, nullable=False),
)

# -- rollouts (issue 6) --------------------------------------------------------------------------
# One row per attempt to take a challenger through the gates; the controller persists its status on
# the row after every look (so a restarted controller resumes), and bumps `revision` on every change
# so two writers can never both apply a transition.

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, ForeignKey("models.id"), nullable=False),
    Column("champion_version", Integer, nullable=False),
    Column("challenger_version", Integer, nullable=False),
    Column("phase", String(20), nullable=False),
    Column("step", Integer),
    Column("outcome", String(20)),
    Column("stage", String(20)),
    Column("reason", Text),
    Column("salt", String(64), nullable=False),
    Column("policy", JSONDocument, nullable=False),
    Column("plan", JSONDocument),
    Column("memory", JSONDocument, nullable=False),
    Column("status", JSONDocument),
    Column("phase_routing_version", Integer, nullable=False),
    Column("phase_started_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("started_by", String(200), nullable=False),
    Column("ended_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("revision", Integer, nullable=False),
    # where `policy` came from: `pitstop.yaml`, `file:<path> sha256:<hex>`, `policy:<name>@<revision>`
    # or `python sha256:<hex>` (migration 0010; rows from before say `pitstop.yaml`, as they all were)
    Column("policy_source", Text),
    # a hold (migration 0011): since when, the rule that held it and why; null when not held
    Column("held_at", UTCDateTime),
    Column("held_rule", String(50)),
    Column("held_reason", Text),
    Column("warned", JSONDocument),  # rules warned about in the current phase or step (a list)
    Column("approvals", JSONDocument),  # ramp steps a person approved leaving (a list of records)
    Index(
        "uq_rollouts_one_active_per_model",
        "model_id",
        unique=True,
        sqlite_where=text("outcome IS NULL"),
        postgresql_where=text("outcome IS NULL"),
    ),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

# -- versions a gateway cannot load (issue 18) ---------------------------------------------------
# One row per gateway process and version (and role) that the gateway's routing asks for but that
# fails to load there, refreshed while it keeps failing and deleted once it loads or is no longer
# asked for: what the controller ends a rollout on (`shadow.unavailable`) and `rollout status` shows.

load_failures = Table(
    "load_failures",
    metadata,
    Column("gateway", String(200), primary_key=True),
    Column("model_id", Id, ForeignKey("models.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("role", String(20), primary_key=True),  # champion, challenger or shadow
    Column("error", Text, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
)

# -- gateway heartbeats (issue 21) ---------------------------------------------------------------
# One row per gateway process, upserted every `serving.heartbeat_interval` and after every routing
# switch: what it serves per model (routing version, versions loaded and warmed), so the controller
# counts a step in force only once every live gateway acknowledges it (`store.gateways`).

gateway_heartbeats = Table(
    "gateway_heartbeats",
    metadata,
    Column("gateway", String(200), primary_key=True),  # host:pid:token
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("serving", JSONDocument, nullable=False),  # [{model, routing_version, loaded, warmed}]
)

# -- named policies (issue 20) -------------------------------------------------------------------
# A rollout policy kept in the store under a name, in revisions: each holds the full validated policy
# (what a rollout started with it stores), the text it was made from and that text's sha256.

policies = Table(
    "policies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("description", Text),
    Column("policy", JSONDocument, nullable=False),
    Column("source_text", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("name", "revision", name="uq_policies_name_revision"),
)

# -- notifications (issue 20) --------------------------------------------------------------------
# The outbox: one row per notified event, inserted by `events.record_event` in the transaction that
# records the decision, so a decision and its notification commit together or not at all. A sender
# later matches it against the receivers configured then (`dispatched_at`) and makes one delivery row
# per receiver: attempts, the last answer, and when it was delivered or is tried next.

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Index("ix_notification_outbox_dispatched", "dispatched_at"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("receiver", String(100), nullable=False),
    Column("topic", String(100), nullable=False),
    Column("status", String(20), nullable=False),  # pending, delivered or failed
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),  # null once delivered or failed
    Column("last_attempt_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("event_id", "receiver", name="uq_notification_deliveries_event_receiver"),
    Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
)

mlflow_deliveries = Table(
    "mlflow_deliveries",
    metadata,
    Column("delivery_id", String(200), primary_key=True),  # MLflow's X-MLflow-Delivery-Id
    Column("received_at", UTCDateTime, nullable=False),
    Column("event", String(100), nullable=False),  # `model_version_alias.created`
    Column("outcome", JSONDocument, nullable=False),  # what pitstop did with it
)
