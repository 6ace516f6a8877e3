"""The one settings object: `r1stack.toml` (or the file named by R1STACK_CONFIG) plus R1STACK_* variables.

Precedence, highest first: explicit keyword arguments (the CLI's flags), environment variables
(`R1STACK_PORT=9000`, nested sections with a double underscore: `R1STACK_KB__TOP_K=5`), the TOML file, defaults.
Each service owns one section class below; nothing else in the code base reads the environment for settings.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "smollm2-135m-instruct"


class EngineSettings(BaseModel):
    # auto | float32 | bfloat16 | float16 (auto: bf16 on CUDA and on CPUs with native bf16)
    dtype: str = "auto"
    device: str = "auto"  # auto | cpu | cuda
    block_size: int = 16
    # KV budget: an absolute byte count wins over the fraction of free memory.
    kv_cache_bytes: int | None = None
    kv_cache_fraction: float = 0.3
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None
    # none | int8 | int4 | awq | gguf | fp8 (weight-only; checked when the model loads)
    quantization: str = "none"
    # True: eager decode step; False: compiled (torch.compile, CUDA graphs on GPU); None: compiled on CUDA only
    enforce_eager: bool | None = None
    # False: PyTorch's ops only, without r1stack's C++ CPU kernels (for the whole process)
    cpu_kernels: bool = True


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = Field(default_factory=list)
    api_key_file: Path | None = None
    allow_ips: list[str] = Field(default_factory=list)  # CIDRs; empty = everyone who can reach the socket
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    served_model_name: str | None = None
    reasoning_parser: str = "auto"  # auto | deepseek_r1 | none
    max_waiting: int = 256  # bounded queue: beyond it, 429 with Retry-After
    request_timeout_s: float = 600.0
    ui: bool = True
    # Gateway mode: non-empty = generation is done by these OpenAI-compatible servers (base URLs ending in /v1),
    # balanced by least outstanding requests; no local model is loaded.
    upstreams: list[str] = Field(default_factory=list)
    upstream_model: str | None = None  # the name the upstreams serve; None: the first their /v1/models lists
    upstream_key_file: Path | None = None  # the bearer key the upstreams expect, alone in a file
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = (
        60.0  # longest silence between two chunks before a replica counts as hung
    )
    upstream_health_interval_s: float = 5.0  # active health checks (GET /v1/models) this often
    upstream_eject_after: int = 2  # consecutive failures that eject a replica (open its circuit)
    upstream_cooldown_s: float = 2.0  # first ejection; doubles each failed return, up to the maximum
    upstream_max_cooldown_s: float = 60.0


class KBSettings(BaseModel):
    store: str = "chroma"  # chroma | milvus
    milvus_uri: str | None = None  # None: Milvus Lite file under the data directory
    embedder: str | None = None  # None: the bundled all-MiniLM-L6-v2
    reranker: str | None = None
    top_k: int = 3
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    hnsw_m: int = 16
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 64
    key_groups: dict[str, list[str]] = Field(default_factory=dict)  # key id -> groups; "*" = admin
    max_file_mb: int = 64  # larger files are refused with a message; the rest of the batch still ingests
    # Fusion of the dense and BM25 rankings (reciprocal rank fusion). Cormack et al.'s k=60 suits fusing many
    # deep runs; with two lists a smaller k lets one list's confident top rank count against the other's.
    # These four were chosen together on a tuning split (benchmarks/kb.py: source-comment questions on half
    # of the modules; see results/kb.json "tuning"), never on a reported question.
    rrf_k: int = 20
    rrf_dense_weight: float = 1.25  # the dense ranking's weight in the fusion (BM25's is 1)
    candidate_pool: int = 200  # each ranking is read max(5*top_k, this) chunks deep before fusion
    # At most this many chunks of one document in a search's top_k, unless too few documents match
    # (0: no cap): repeated chunks of one document repeat one citation and crowd out other documents.
    max_chunks_per_doc: int = 1
    embed_threads: int = 0  # >0: torch CPU threads for embedding (process-wide); 0 leaves torch's default
    # Languages the embedder reads (ISO 639-1). None: ["en"] for the bundled MiniLM, all for other models.
    # Hybrid search leaves the dense ranking out for a Chinese query when "zh" is not among them.
    embedder_languages: list[str] | None = None


class WebSearchSettings(BaseModel):
    # The stack's side: how the chat pipeline reaches the search proxy.
    proxy_address: str | None = None  # host:port of the search proxy; None = web search off
    timeout_s: float = 10.0  # one search, end to end; the chat request never waits longer for it
    tls_ca: Path | None = None  # set: TLS to the proxy, verified against this CA
    tls_cert: Path | None = None  # with tls_key: the stack's client certificate (mutual TLS)
    tls_key: Path | None = None
    tls_server_name: str | None = None  # name to verify in the proxy's certificate, if not the address's host
    top_k: int = 3
    language: str = ""  # default language tag for searches, e.g. "zh-CN"; empty = the provider's default
    # The proxy's side (`r1stack search-proxy serve`; its flags override these).
    listen: str = "127.0.0.1:50551"
    providers: list[str] = Field(default_factory=lambda: ["searxng"])  # tried in order
    searxng_url: str | None = None
    bing_api_key: str | None = None  # R1STACK_WEBSEARCH__BING_API_KEY; never logged
    bing_endpoint: str | None = None
    bocha_api_key: str | None = None  # R1STACK_WEBSEARCH__BOCHA_API_KEY; never logged
    bocha_endpoint: str | None = None
    provider_timeout_s: float = 10.0  # budget of one search at the proxy, retries included
    provider_retries: int = 2  # extra tries on 429 and 5xx, with exponential backoff
    cache_ttl_s: float = 300.0  # 0 = no result cache
    cache_entries: int = 1024
    rate_per_s: float = 5.0  # upstream searches a second; 0 = unlimited
    rate_burst: int = 10
    allow_clients: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])  # CIDRs
    allow_domains: list[str] = Field(default_factory=list)  # non-empty: only these domains (and subdomains)
    deny_domains: list[str] = Field(default_factory=list)
    trusted_cidrs: list[str] = Field(default_factory=list)  # non-public networks pages may be fetched from
    fetch_timeout_s: float = 10.0
    fetch_max_bytes: int = 2_000_000
    fetch_max_redirects: int = 5
    fetch_max_chars: int = 20_000
    proxy_tls_cert: Path | None = None  # the proxy's certificate and key: TLS on
    proxy_tls_key: Path | None = None
    proxy_client_ca: Path | None = None  # set: clients must present a certificate from this CA (mutual TLS)


class GuardSettings(BaseModel):
    pii_policy: str = "redact"  # redact | mask | block | allow
    pii_on_prompts: bool = False
    pii_threshold: float = 0.5  # confidence (after context words) at which a match counts as an identifier
    key_policies: dict[str, str] = Field(default_factory=dict)  # key id -> policy
    custom_patterns: dict[str, str] = Field(default_factory=dict)  # label -> regex
    watermark: bool = False
    watermark_key: str = "r1stack-default-watermark-key"
    watermark_gamma: float = 0.25
    watermark_delta: float = 2.0
    watermark_context: int = 1  # previous tokens that seed each green list
    watermark_z_threshold: float = 4.0  # detector verdict: watermarked above this z-score
    audit: bool = True
    audit_full_text: bool = False
    audit_hmac_key: str | None = None  # set: record hashes are HMAC-SHA256, so the chain cannot be re-forged


class AppsSettings(BaseModel):
    # The clinical assistant's two models (catalogue name or local path); None: the default model (CLI) or the
    # served model (server). On a server a different triage model is loaded beside the served one on first use.
    triage_model: str | None = None  # stage 1: small, fast, constrained to label sets
    diagnosis_model: str | None = None  # stage 2: the larger model (a server's stage 2 is its served model)
    triage_kv_cache_bytes: int = 64 << 20  # the triage model's KV cache when a server loads it beside


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="R1STACK_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Path("r1stack-data")
    model: str = DEFAULT_MODEL
    engine: EngineSettings = Field(default_factory=EngineSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    kb: KBSettings = Field(default_factory=KBSettings)
    websearch: WebSearchSettings = Field(default_factory=WebSearchSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    apps: AppsSettings = Field(default_factory=AppsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("R1STACK_CONFIG", "r1stack.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    # Every file r1stack writes lives under data_dir; these name its rooms.
    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def kb_dir(self) -> Path:
        return self.data_dir / "kb"

    @property
    def audit_dir(self) -> Path:
        return self.data_dir / "audit"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
