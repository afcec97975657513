"""Typed, validated settings: one TOML file plus ``STREAMER_*`` environment overrides.

Rules of this module:

* :func:`load_config` is the only entry point that touches the file system or the environment;
  it returns a frozen :class:`Settings` or raises :class:`ConfigError`, never anything else;
* precedence: environment (``STREAMER_KAFKA__BOOTSTRAP_SERVERS``) > file > defaults; a list such
  as ``companies`` is replaced whole from the environment as JSON (``STREAMER_COMPANIES='[...]'``);
* every section forbids unknown keys, so a misspelt key is an error that names it;
* secrets are :class:`~pydantic.SecretStr`; ``repr``, ``str``, JSON dumps, :meth:`Settings.redacted`
  and :class:`ConfigError` never contain their values; secret files are read once, at load;
* relative paths are taken relative to the working directory, as every other CLI tool does.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import socket
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FilePath,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from streamer.filters import DOCUMENTED_JOB_TYPES, JOB_STATES, JobFilter
from streamer.privacy import MIN_KEY_BYTES, EmailPolicy, Mode

ENV_PREFIX = "STREAMER_"
ENV_DELIMITER = "__"
SHIPPED_WSDL = Path(__file__).parent / "ips" / "wsdl" / "IpsApi-2014-04-03.wsdl"
# Keys whose values are never echoed in errors (a URL may carry user:password@).
_NO_ECHO = frozenset({"password", "sasl_password", "endpoint", "wsdl"})
MASK = "**********"
Loc = tuple[str | int, ...]
#: A non-empty secret: an empty password is always a mistake, never a credential.
Secret = Annotated[SecretStr, Field(min_length=1)]


def _package_version() -> str:
    try:
        return importlib.metadata.version("ips-job-streamer")
    except importlib.metadata.PackageNotFoundError:  # running from a plain checkout
        return "0.0.0"


def _fail(problems: Sequence[tuple[Loc, str]]) -> NoReturn:
    """Raise one validation error carrying several (relative key, message) problems.

    Cross-field checks live in model validators, whose errors pydantic reports at the model's own
    location; the relative keys let :class:`ConfigError` name the exact offending key instead.
    """
    summary = "; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems)
    raise PydanticCustomError("config", "{summary}", {"summary": summary, "problems": problems})


def _secret_file(inline: SecretStr | None, path: Path | None, key: str) -> SecretStr | None:
    """Read and strip the secret file ``path`` (the ``{key}_file`` of a section), if set."""
    if path is None:
        return None
    if inline is not None:
        _fail([((f"{key}_file",), f"set either {key} or {key}_file, not both")])
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        _fail([((f"{key}_file",), f"cannot read secret file {str(path)!r}: {reason}")])
    if not text:
        _fail([((f"{key}_file",), f"secret file {str(path)!r} is empty")])
    return SecretStr(text)


def _lower(value: object) -> object:  # STREAMER_LOG__LEVEL=DEBUG is too common to refuse
    return value.lower() if isinstance(value, str) else value


class _Section(BaseModel):
    # hide_input_in_errors: a ValidationError's own text must never echo a password back.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True
    )


class _Credentials(_Section):
    """``password`` / ``password_file``, shared by ``[ips]`` and each company."""

    password: Secret | None = None
    password_file: Path | None = None
    _file_password: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_password_file(self) -> _Credentials:
        self._file_password = _secret_file(self.password, self.password_file, "password")
        return self

    @property
    def resolved_password(self) -> SecretStr | None:
        """The password given inline or read from ``password_file``, if either is set."""
        return self.password if self.password is not None else self._file_password


#: The user information of a URL (``scheme://user:password@``), up to the last ``@`` before the
#: path.
_URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")


def _redact_url(url: str) -> str:
    """``url`` with its user information, if any, replaced: ``https://***@host/path``."""
    return _URL_USERINFO.sub(r"\1***@", url, count=1)


class IpsConfig(_Credentials):
    """``[ips]``: how to reach and authenticate against the IPS SOAP API."""

    # Path or URL; None = the WSDL shipped in the package. A URL may carry user:password@ (sent
    # as HTTP Basic): kept out of repr, redacted in JSON dumps (redacted(), /status, check).
    wsdl: str | None = Field(default=None, repr=False)
    endpoint: str | None = None  # overrides the WSDL's <service> address (a staging host)
    user: str = ""
    app_name: str = "ips-job-streamer"
    app_version: str = Field(default_factory=_package_version)
    locale: str | None = None
    auth: Literal["header", "basic", "both"] = "header"
    timeout_s: PositiveFloat = 30.0
    verify_tls: bool = True
    ca_file: FilePath | None = None
    include_waiting_jobs: bool | None = None
    #: Largest reply read from IPS (or WSDL fetched by URL); a 10,000-job reply is ~15 MB.
    max_reply_bytes: PositiveInt = 64 * 1024 * 1024

    def wsdl_location(self) -> str:
        """``wsdl`` as given, else the path of the WSDL shipped in the package."""
        return self.wsdl or str(SHIPPED_WSDL)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL")
            if parts.username or parts.password:  # it would show up in logs and /status
                raise ValueError("must not embed credentials; use ips.user / ips.password")
        return value

    @field_serializer("wsdl", when_used="json")
    def _wsdl_without_credentials(self, value: str | None) -> str | None:
        return None if value is None else _redact_url(value)

    @field_validator("wsdl")
    @classmethod
    def _wsdl_exists(cls, value: str | None) -> str | None:
        is_url = value is not None and urlsplit(value).scheme in ("http", "https", "file")
        if value is not None and not is_url and not Path(value).is_file():
            raise ValueError("no such file (give a file path or an http(s) URL)")
        return value


class CompanyConfig(_Credentials):
    """One ``[[companies]]`` entry; ``user``/``password*``/``interval_s`` override the defaults."""

    handle: str
    name: str | None = None
    interval_s: PositiveFloat | None = None
    user: str | None = None

    @field_validator("handle")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class PollConfig(_Section):
    """``[poll]``: cadence, backoff and readiness of the per-company poll loops."""

    interval_s: PositiveFloat = 5.0
    jitter: float = Field(default=0.1, ge=0, le=1)  # fraction of the interval
    backoff_initial_s: PositiveFloat = 1.0
    backoff_max_s: PositiveFloat = 60.0
    auth_backoff_s: PositiveFloat = 600.0
    failures_before_degraded: PositiveInt = 3
    ready_factor: float = Field(default=3.0, ge=1)
    max_concurrent_polls: PositiveInt = 64
    job_log_concurrency: PositiveInt = 8

    @model_validator(mode="after")
    def _backoff_order(self) -> PollConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            _fail([(("backoff_max_s",), "must be >= poll.backoff_initial_s")])
        return self


class ProgressConfig(_Section):
    """``[progress]``: coalescing of ``job.progress`` events per job."""

    min_step: int = Field(default=0, ge=0, le=100)
    min_interval_s: NonNegativeFloat = 0.0


class StallConfig(_Section):
    """``[stall]``: when a job without progress counts as stalled."""

    after_s: NonNegativeFloat | None = 900.0  # None or 0 disables stall detection


class CompletionConfig(_Section):
    """``[completion]``: job-log lookups for vanished jobs, and reconciliation with the job log
    listing (``getJobLogs``) for the jobs no poll saw. Times are IPS seconds, except
    ``reconcile_interval_s`` (the streamer's)."""

    log_max_attempts: PositiveInt = 5
    #: Seconds between two reconciliation passes per company; 0 turns reconciliation off.
    reconcile_interval_s: NonNegativeFloat = 60.0
    #: How far below the watermark each window starts again (late logs, clock skew).
    reconcile_overlap_s: NonNegativeFloat = 120.0
    #: How far behind IPS's clock each window ends, so that IPS has written its logs.
    reconcile_delay_s: NonNegativeFloat = 30.0
    #: ``numRows`` of each getJobLogs request; a reply this long is split in two.
    reconcile_max_rows: int = Field(default=1000, ge=2, le=100_000)
    #: On a company's very first start, report jobs that ended this long before it.
    lookback_s: NonNegativeFloat = 0.0
    #: Error (and warning) messages a job.completed other than succeeded carries, each kind.
    max_log_messages: int = Field(default=5, ge=1, le=100)
    #: Longest message text kept (longer ones are cut, ending in an ellipsis).
    max_log_message_chars: int = Field(default=300, ge=20, le=10_000)
    #: Completions per company cycle whose messages are read (getJobLogDetails); the others
    #: publish logMessages null. 0: no message is read.
    max_log_lookups: int = Field(default=100, ge=0, le=10_000)
    #: Seconds the message look-ups of one cycle may take together.
    log_messages_timeout_s: PositiveFloat = 10.0

    @property
    def reconcile(self) -> bool:
        """Whether reconciliation is on."""
        return self.reconcile_interval_s > 0


def _names(values: tuple[str, ...] | None, known: Sequence[str]) -> tuple[str, ...] | None:
    """Job type or state names: non-empty, in IPS's own spelling when it is a known name."""
    if values is None:
        return None
    by_fold = {k.casefold(): k for k in known}
    for value in values:
        if not value.strip():
            raise ValueError("names must not be empty")
        spelt = by_fold.get(value.casefold())
        if spelt is not None and spelt != value:
            raise ValueError(
                f"{value!r} is not an IPS name; did you mean {spelt!r}? (case matters)"
            )
    return tuple(dict.fromkeys(values))


def _job_types(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return _names(values, DOCUMENTED_JOB_TYPES)


def _states(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return _names(values, JOB_STATES)


JobTypes = Annotated[tuple[str, ...], AfterValidator(_job_types)]
States = Annotated[tuple[str, ...], AfterValidator(_states)]


def _no_overlap(section: _Section) -> None:
    both = set(getattr(section, "job_types", None) or ()) & set(
        getattr(section, "exclude_job_types", None) or ()
    )
    if both:
        why = f"{', '.join(sorted(both))} also in job_types (a type is either streamed or not)"
        _fail([(("exclude_job_types",), why)])


class CompanyFilterConfig(_Section):
    """``[filter.companies."<handle>"]``: a company's own value of any ``[filter]`` key."""

    job_types: JobTypes | None = None
    exclude_job_types: JobTypes | None = None
    states: States | None = None
    progress: bool | None = None

    @model_validator(mode="after")
    def _overlap(self) -> CompanyFilterConfig:
        _no_overlap(self)
        return self


class FilterConfig(_Section):
    """``[filter]``: which jobs and events are streamed (see :mod:`streamer.filters`)."""

    #: Job types streamed; empty = every type.
    job_types: JobTypes = ()
    #: Job types never streamed (wins over job_types).
    exclude_job_types: JobTypes = ()
    #: States whose job.observed / job.state_changed are published; empty = every state.
    states: States = ()
    #: False turns job.progress off.
    progress: bool = True
    #: Per-company values, by company handle; a key a company does not set is the [filter] one.
    companies: dict[str, CompanyFilterConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overlap(self) -> FilterConfig:
        _no_overlap(self)
        return self

    def for_company(self, handle: str) -> JobFilter:
        """The effective filter of one company: its own keys, else the ``[filter]`` ones."""
        own = self.companies.get(handle, CompanyFilterConfig())

        def pick(key: str) -> Any:
            value = getattr(own, key)
            return getattr(self, key) if value is None else value

        return JobFilter(
            job_types=frozenset(pick("job_types")),
            exclude_job_types=frozenset(pick("exclude_job_types")),
            states=frozenset(pick("states")),
            progress=pick("progress"),
        )


class PrivacyConfig(_Section):
    """``[privacy]``: what the streamer publishes of personal data (see :mod:`streamer.privacy`)."""

    submit_user_email: Annotated[Mode, BeforeValidator(_lower)] = "drop"
    #: Secret file holding the HMAC key of ``submit_user_email = "hash"``.
    hash_key_file: Path | None = None
    _key: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _read_key(self) -> PrivacyConfig:
        if self.submit_user_email != "hash":
            return self
        if self.hash_key_file is None:
            _fail([(("hash_key_file",), 'required when submit_user_email is "hash"')])
        key = _secret_file(None, self.hash_key_file, "hash_key")
        if key is not None and len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
            why = f"the key in {str(self.hash_key_file)!r} is shorter than {MIN_KEY_BYTES} bytes"
            _fail([(("hash_key_file",), why)])
        self._key = key
        return self

    @property
    def policy(self) -> EmailPolicy:
        """The policy to apply to IPS replies (holds the key: never log it)."""
        key = b"" if self._key is None else self._key.get_secret_value().encode()
        return EmailPolicy(self.submit_user_email, key)


#: Longest ``kafka.transactional_id`` accepted (as long as a Kafka topic name may be).
TRANSACTIONAL_ID_MAX_CHARS = 249


class KafkaConfig(_Section):
    """``[kafka]``: broker connection, security, topics and transactions."""

    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    topic_prefix: str = Field(default="ips", pattern=r"^[a-zA-Z0-9._-]+$", max_length=200)
    partitions: PositiveInt = 3
    replication_factor: PositiveInt = 1
    create_topics: bool = True
    # Kafka's protocol carries it as a string of at most 32,767 bytes (a 40,000-character id
    # crashed the producer); the limit of a topic name is a sane, documented bound far below.
    transactional_id: str = Field(
        default="ips-job-streamer", min_length=1, max_length=TRANSACTIONAL_ID_MAX_CHARS
    )
    client_id: str = Field(default="ips-job-streamer", min_length=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: FilePath | None = None
    ssl_certfile: FilePath | None = None
    ssl_keyfile: FilePath | None = None
    request_timeout_s: PositiveFloat = 15.0
    max_batch_records: PositiveInt = 20000
    commit_interval_s: NonNegativeFloat = 0.0  # how long a group commit waits for more cycles
    heartbeat: bool = True
    #: Companies are split into this many shards, shared by the instances of one group.
    shards: int = Field(default=32, ge=1, le=4096)
    #: The consumer group the instances of one deployment share (default: transactional_id).
    group_id: str | None = Field(default=None, min_length=1, max_length=249)
    #: Static group membership: a restart within session_timeout_s moves no shard. Default: the
    #: host name; give each instance on one host its own (e.g. the pod name).
    group_instance_id: str | None = Field(default=None, min_length=1, max_length=249)
    session_timeout_s: float = Field(default=10.0, ge=6.0, le=1800.0)
    #: Largest record the streamer writes; keep it below the broker's message.max.bytes.
    max_record_bytes: int = Field(default=1_000_000, ge=16_384, le=8 * 1024 * 1024)
    _file_password: SecretStr | None = PrivateAttr(default=None)

    @property
    def effective_group_id(self) -> str:
        """``group_id``, or the transactional id when none is set."""
        return self.group_id or self.transactional_id

    @property
    def effective_group_instance_id(self) -> str:
        """``group_instance_id``, or the host name when none is set."""
        return self.group_instance_id or socket.gethostname()

    @property
    def uses_sasl(self) -> bool:
        """Whether the protocol authenticates with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        """Whether the protocol encrypts with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def resolved_sasl_password(self) -> SecretStr | None:
        """The SASL password given inline or read from ``sasl_password_file``."""
        return self.sasl_password if self.sasl_password is not None else self._file_password

    @model_validator(mode="after")
    def _security(self) -> KafkaConfig:
        self._file_password = _secret_file(
            self.sasl_password, self.sasl_password_file, "sasl_password"
        )
        required = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password": self.resolved_sasl_password,
        }
        why = f"required when security_protocol is {self.security_protocol}"
        problems: list[tuple[Loc, str]] = [
            ((key,), why + (" (or sasl_password_file)" if key == "sasl_password" else ""))
            for key, value in required.items()
            if self.uses_sasl and not value
        ]
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems.append((("ssl_certfile",), "required when ssl_keyfile is set"))
        if problems:
            _fail(problems)
        return self

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments shared by aiokafka clients. The result holds the SASL password in
        clear (aiokafka needs it): pass it on, never log it."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": int(self.request_timeout_s * 1000),
        }
        password = self.resolved_sasl_password
        if self.uses_sasl and password is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = password.get_secret_value()
        if self.uses_ssl:
            from aiokafka.helpers import create_ssl_context  # heavy import, only when needed

            kwargs["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        return kwargs


class HttpConfig(_Section):
    """``[http]``: the health / readiness / metrics / status server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


class EventsConfig(_Section):
    """``[events]``: what the records say about their contract."""

    #: Where the JSON Schemas are published (``ce_dataschema`` = this + ``<type>.v2.json``);
    #: "" = this daemon's own ``/schemas/`` endpoint (the service builds the URL).
    schema_base_url: str = ""

    @field_validator("schema_base_url")
    @classmethod
    def _schema_base(cls, value: str) -> str:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL (or empty)")
            if not value.endswith("/"):
                raise ValueError("must end with '/' (the schema file name is appended)")
        return value


class HeartbeatConfig(_Section):
    """``[heartbeat]``: how often a company's heartbeat is published (``kafka.heartbeat`` on)."""

    #: Seconds between two heartbeats of a company while its poll outcome (ok, error, active
    #: jobs) stays the same; a change or a failed poll publishes one at once. 0: every cycle.
    every_s: NonNegativeFloat = 30.0


class RuntimeConfig(_Section):
    """``[runtime]``: the event loop."""

    #: Run on uvloop when it is installed (a faster event loop); false: asyncio's own loop.
    uvloop: bool = True


class LogConfig(_Section):
    """``[log]``: level and rendering of the structured log."""

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)] = "auto"
    #: Level of the ``company_cycle`` line every committed cycle writes.
    cycles: Annotated[Literal["debug", "info"], BeforeValidator(_lower)] = "debug"
    #: Seconds between the ``company_summary`` lines (info) of each company; 0: none.
    summary_every_s: NonNegativeFloat = 60.0


class ShutdownConfig(_Section):
    """``[shutdown]``: bound on the graceful drain after SIGTERM."""

    drain_timeout_s: PositiveFloat = 20.0


class SimulatorTable(_Section):
    """``[simulator]``: settings of the built-in IPS simulator (``streamer simulate --config``,
    ``streamer demo``), kept beside the streamer's in the demo config. The daemon ignores the
    table; the simulator checks its keys."""

    model_config = ConfigDict(frozen=True, extra="allow", hide_input_in_errors=True)


class Credentials(NamedTuple):
    """A company's effective IPS ``(user, password)``; ``repr`` masks the password."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={MASK!r})"


# load_config hands (file, environment) to settings_customise_sources, a classmethod, here.
_REQUEST: ContextVar[tuple[Path | None, Mapping[str, str]] | None] = ContextVar("_REQUEST")


class _MappingEnvSource(EnvSettingsSource):
    """The stock environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class Settings(BaseSettings):
    """The whole configuration. ``Settings(...)`` validates only the values given;
    :func:`load_config` adds the TOML file and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        hide_input_in_errors=True,
    )

    ips: IpsConfig = IpsConfig()
    companies: tuple[CompanyConfig, ...] = Field(min_length=1)
    poll: PollConfig = PollConfig()
    progress: ProgressConfig = ProgressConfig()
    stall: StallConfig = StallConfig()
    completion: CompletionConfig = CompletionConfig()
    filter: FilterConfig = FilterConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    kafka: KafkaConfig = KafkaConfig()
    http: HttpConfig = HttpConfig()
    events: EventsConfig = EventsConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    log: LogConfig = LogConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    #: Not the daemon's: read by the simulator only, left out of ``/status`` and dumps.
    simulator: SimulatorTable = Field(default=SimulatorTable(), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Earlier sources win: init kwargs, then the environment, then the TOML file."""
        request = _REQUEST.get(None)
        if request is None:  # plain construction: plain data, no hidden inputs
            return (init_settings,)
        path, environ = request
        env_source = _MappingEnvSource(settings_cls, environ)
        if path is None:
            return (init_settings, env_source)
        return (init_settings, env_source, TomlConfigSettingsSource(settings_cls, toml_file=path))

    @model_validator(mode="after")
    def _companies(self) -> Settings:
        problems: list[tuple[Loc, str]] = []
        seen: dict[str, int] = {}
        for i, c in enumerate(self.companies):
            if c.handle in seen:
                why = f"duplicate handle {c.handle!r} (also companies[{seen[c.handle]}])"
                problems.append((("companies", i, "handle"), why))
            seen.setdefault(c.handle, i)
        # One error for all companies lacking a credential: the fix is usually in [ips].
        no_user = [c.handle for c in self.companies if not (c.user or self.ips.user)]
        no_pw = [c.handle for c in self.companies if not c.resolved_password]
        no_pw = no_pw if self.ips.resolved_password is None else []
        if no_user:
            why = f"required: companies {', '.join(no_user)} have no user of their own"
            problems.append((("ips", "user"), why))
        if no_pw:
            why = f"required (or ips.password_file): companies {', '.join(no_pw)} have no password"
            problems.append((("ips", "password"), why + " or password_file of their own"))
        for handle in self.filter.companies:
            if handle not in seen:  # a misspelt handle would silently filter nothing
                why = "no such company in [[companies]]"
                problems.append((("filter", "companies", handle), why))
        if problems:
            _fail(problems)
        return self

    def _company(self, company: CompanyConfig | str) -> CompanyConfig:
        if isinstance(company, CompanyConfig):
            return company
        found = next((c for c in self.companies if c.handle == company), None)
        if found is None:
            raise KeyError(company)
        return found

    def credentials_for(self, company: CompanyConfig | str) -> Credentials:
        """Effective ``(user, password)`` of a company (or handle): its own, else ``ips.*``.
        The password is plain text for the IPS client: pass it on, never log it."""
        company = self._company(company)
        password = company.resolved_password or self.ips.resolved_password
        if password is None:  # only reachable for a model_construct()-ed Settings
            raise ValueError(f"no password for company {company.handle!r}")
        return Credentials(company.user or self.ips.user, password.get_secret_value())

    def interval_for(self, company: CompanyConfig | str) -> float:
        """Effective poll interval of a company (or handle): its own, else ``poll.interval_s``."""
        return self._company(company).interval_s or self.poll.interval_s

    def redacted(self) -> dict[str, Any]:
        """JSON-safe dump for ``/status`` and ``streamer check``; secrets read ``**********``."""
        # mode="json" serialises every SecretStr as its mask, never its value.
        return self.model_dump(mode="json")


class ConfigError(Exception):
    """Configuration that cannot be used: ``str()`` has one ``config error: ...`` line per problem,
    each naming its dotted key, and never a secret value."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)  # (dotted key or file, message)
        super().__init__("\n".join(f"config error: {key}: {msg}" for key, msg in self.problems))

    @property
    def keys(self) -> tuple[str, ...]:
        """The dotted keys (or file paths) named, in order."""
        return tuple(key for key, _ in self.problems)


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from ``path`` (TOML; None = environment and defaults only) and ``env``
    (default ``os.environ``); raise :class:`ConfigError` on any problem."""
    environ = os.environ if env is None else env
    if path is not None:
        _check_toml(path)
    token = _REQUEST.set((path, environ))
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_problems(exc, environ)) from None  # the cause may quote inputs
    except SettingsError as exc:  # unparsable JSON in a complex env var, e.g. STREAMER_COMPANIES
        found = re.search(r'field "([^"]+)"', str(exc))
        key = found.group(1) if found else "environment"
        name = ENV_PREFIX + key.upper()
        raise ConfigError([(key, f"cannot parse {name} from the environment as JSON")]) from None
    finally:
        _REQUEST.reset(token)


def _check_toml(path: Path) -> None:
    """Refuse a missing, unreadable or malformed file up front: the TOML source skips missing
    files silently and would surface syntax errors as bare tracebacks."""
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read config file: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:  # message ends "(at line L, column C)", no content
        raise ConfigError([(str(path), f"invalid TOML: {exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(str(path), "invalid TOML: not UTF-8")]) from None


def _problems(exc: ValidationError, env: Mapping[str, str]) -> list[tuple[str, str]]:
    env_names = {name.upper() for name in env}
    out: list[tuple[str, str]] = []
    errors = exc.errors(include_url=False)
    # pydantic also reports "too short" for the list when one of its items is invalid; that
    # would wrongly say no company is configured.
    bad_item = any(len(e["loc"]) > 1 and e["loc"][0] == "companies" for e in errors)
    for err in errors:
        loc: Loc = tuple(err["loc"])
        if bad_item and loc == ("companies",) and err["type"] == "too_short":
            continue
        ctx = err.get("ctx") or {}
        if err["type"] == "config":
            out.extend((_dotted(loc + sub), msg) for sub, msg in ctx["problems"])
            continue
        message = _message(err["type"], err["msg"], loc, err.get("input"))
        # Name the variable when the bad value (or the JSON holding it) came from the environment.
        for end in range(len(loc), 0, -1):
            env_name = ENV_PREFIX + ENV_DELIMITER.join(str(p) for p in loc[:end]).upper()
            if env_name in env_names:
                message += f" (from environment {env_name})"
                break
        out.append((_dotted(loc), message))
    return out


def _message(kind: str, msg: str, loc: Loc, value: object) -> str:
    if kind == "extra_forbidden":  # the value of a misspelt `pasword` key is a secret too
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if loc == ("companies",) and kind in ("missing", "too_short"):
        return "at least one [[companies]] table is required"
    if loc == ("companies",) and kind == "tuple_type":  # e.g. from STREAMER_COMPANIES__0__HANDLE
        return (
            "must be a list of tables; in the environment set STREAMER_COMPANIES to a JSON "
            "list (per-index variables are not supported)"
        )
    if kind == "missing":
        return "required key is missing"
    msg = msg.removeprefix("Value error, ")
    secret = any(part in _NO_ECHO for part in loc)
    if secret and kind == "too_short":
        return "must not be empty"
    if not secret and isinstance(value, str | int | float | bool):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def _known_keys(parent: Loc) -> list[str]:
    """Key names allowed at ``parent`` (for "did you mean" hints)."""
    if not parent:
        return list(Settings.model_fields)
    field = Settings.model_fields.get(str(parent[0]))
    model: type = CompanyConfig if parent[0] == "companies" else type(getattr(field, "default", 0))
    return list(model.model_fields) if issubclass(model, BaseModel) else []


def _dotted(loc: Loc) -> str:
    """``("companies", 0, "handle")`` -> ``companies[0].handle``."""
    text = ""
    for part in loc:
        if isinstance(part, str) and not part.isidentifier():
            part = f'"{part}"'  # a company handle as a TOML key: filter.companies."c|1001"
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"
