"""Configuration: TOML + environment loading, defaults, error messages and secret masking."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from streamer.config import (
    SHIPPED_WSDL,
    CompanyConfig,
    ConfigError,
    EventsConfig,
    HttpConfig,
    IpsConfig,
    KafkaConfig,
    PollConfig,
    Settings,
    load_config,
)
from streamer.encode import SCHEMA_ID_BASE
from streamer.ips.client import DEFAULT_MAX_REPLY_BYTES
from streamer.service import ips_settings_for, schema_base_url

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "streamer.example.toml"
DEMO = ROOT / "config" / "demo.toml"
SECRET = "s3cr3t-Pa55-do-not-print"
MINIMAL = f"""
[ips]
user = "api@example.com"
password = "{SECRET}"

[[companies]]
handle = "c|1001"
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "streamer.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env or {})


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return info.value


# --- the shipped configs ------------------------------------------------------------------------


def test_example_config_loads_with_password_from_env() -> None:
    """The example config is valid once the env supplies the password it refers to."""
    s = load_config(EXAMPLE, {"STREAMER_IPS__PASSWORD": SECRET})
    assert [c.handle for c in s.companies] == ["c|1001", "c|1002"]
    assert s.credentials_for("c|1001") == ("ips-api@example.com", SECRET)
    assert s.credentials_for("c|1002") == ("brand-b-api@example.com", SECRET)
    assert (s.interval_for("c|1001"), s.interval_for("c|1002")) == (5.0, 10.0)
    assert s.ips.endpoint == "https://s7sps1apissl.scene7.com/scene7/services/IpsApiService"


def test_example_config_states_the_real_defaults() -> None:
    """Every value the example spells out equals the code default, so the comments cannot lie."""
    s = load_config(EXAMPLE, {"STREAMER_IPS__PASSWORD": SECRET})
    defaults = Settings.model_validate(
        {"ips": {"user": "u", "password": "p"}, "companies": [{"handle": "x"}]}
    )
    sections = ("poll", "progress", "stall", "completion", "filter", "privacy", "kafka", "http")
    for section in (*sections, "heartbeat", "runtime", "log", "shutdown"):
        assert getattr(s, section) == getattr(defaults, section), section


def test_example_config_mentions_every_key() -> None:
    """Each key of each section appears in the example, set or commented out."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        model = CompanyConfig if name == "companies" else type(field.default)
        for key in model.model_fields:
            assert f"{key} =" in text or f"{key:<13} " in text, f"{name}.{key}"


def test_demo_config_is_the_embedded_demo() -> None:
    """The demo config points at the local simulator and broker with the demo account."""
    s = load_config(DEMO, {})
    assert s.ips.endpoint == "http://127.0.0.1:8089/scene7/services/IpsApiService"
    assert s.ips.wsdl is None
    assert s.ips.wsdl_location() == str(SHIPPED_WSDL)
    assert [c.handle for c in s.companies] == ["c|1001", "c|1002", "c|1003"]
    assert all(s.credentials_for(c) == ("demo@example.com", "demo-password") for c in s.companies)
    assert s.poll.interval_s == 2.0
    assert (s.kafka.bootstrap_servers, s.http.port, s.stall.after_s) == ("127.0.0.1:9092", 8000, 8)
    assert (s.progress.min_step, s.progress.min_interval_s) == (5, 2.0)


def test_shipped_wsdl_exists() -> None:
    """The default WSDL location is a file in the package."""
    assert SHIPPED_WSDL.is_file()


# --- environment --------------------------------------------------------------------------------


def test_env_overrides_nested_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    """STREAMER_SECTION__KEY beats the file; sibling keys from the file survive."""
    text = MINIMAL + '[kafka]\nbootstrap_servers = "file:9092"\ntopic_prefix = "fromfile"\n'
    s = load(
        tmp_path,
        text,
        {
            "STREAMER_KAFKA__BOOTSTRAP_SERVERS": "env:9092",
            "streamer_poll__interval_s": "7.5",  # names are case-insensitive
            "STREAMER_IPS__PASSWORD": "from-env",
            "STREAMER_HTTP__ENABLED": "false",
        },
    )
    assert s.kafka.bootstrap_servers == "env:9092"
    assert s.kafka.topic_prefix == "fromfile"
    assert s.poll.interval_s == 7.5
    assert s.credentials_for("c|1001").password == "from-env"
    assert s.http.enabled is False


def test_env_companies_json_replaces_the_list(tmp_path: Path) -> None:
    """STREAMER_COMPANIES (JSON) replaces the file's company list whole."""
    companies = [{"handle": "c|9"}, {"handle": "c|8", "interval_s": 3}]
    s = load(tmp_path, MINIMAL, {"STREAMER_COMPANIES": json.dumps(companies)})
    assert [(c.handle, s.interval_for(c)) for c in s.companies] == [("c|9", 5.0), ("c|8", 3.0)]


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, load_config reads os.environ."""
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv("STREAMER_LOG__LEVEL", "DEBUG")
    assert load_config(path).log.level == "debug"


def test_no_file_means_env_and_defaults_only() -> None:
    """path=None loads from the environment alone."""
    s = load_config(
        None,
        {
            "STREAMER_COMPANIES": '[{"handle": "c|1"}]',
            "STREAMER_IPS__USER": "u",
            "STREAMER_IPS__PASSWORD": "p",
        },
    )
    assert s.credentials_for("c|1") == ("u", "p")
    assert s.kafka == KafkaConfig()


def test_direct_construction_ignores_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings(...) is plain data: no environment or file is consulted behind the caller."""
    monkeypatch.setenv("STREAMER_POLL__INTERVAL_S", "99")
    s = Settings(
        ips=IpsConfig(user="u", password=SecretStr("p")), companies=(CompanyConfig(handle="c|1"),)
    )
    assert s.poll == PollConfig()


# --- errors name their key ----------------------------------------------------------------------


def test_out_of_range_message_is_exact(tmp_path: Path) -> None:
    """An out-of-range value yields one line: key, pydantic's reason and the offending value."""
    err = error(tmp_path, MINIMAL + "[poll]\ninterval_s = -1\n")
    assert str(err) == "config error: poll.interval_s: Input should be greater than 0 (got -1)"
    assert err.keys == ("poll.interval_s",)


@pytest.mark.parametrize(
    ("extra", "key", "fragment"),
    [
        ('[poll]\ninterval_s = "fast"\n', "poll.interval_s", "valid number"),
        ("[poll]\ninterval_s = inf\n", "poll.interval_s", "finite number"),
        ("[poll]\njitter = 1.5\n", "poll.jitter", "less than or equal to 1"),
        ("[poll]\nbackoff_initial_s = 90\n", "poll.backoff_max_s", ">= poll.backoff_initial_s"),
        ("[poll]\nintervall_s = 3\n", "poll.intervall_s", "unknown key (did you mean 'interval_s'"),
        ("[polls]\ninterval_s = 3\n", "polls", "unknown key (did you mean 'poll'"),
        ("[progress]\nmin_step = 101\n", "progress.min_step", "less than or equal to 100"),
        ("[completion]\nlog_max_attempts = 0\n", "completion.log_max_attempts", "greater than 0"),
        ("[http]\nport = 70000\n", "http.port", "65535"),
        ('[log]\nlevel = "verbose"\n', "log.level", "'debug', 'info', 'warning' or 'error'"),
        ('[kafka]\ntopic_prefix = "ips/prod"\n', "kafka.topic_prefix", "pattern"),
        ('[kafka]\nssl_cafile = "/nonexistent/ca.pem"\n', "kafka.ssl_cafile", "to a file"),
        ('[ips]\nauth = "token"\n', "ips.auth", "'header', 'basic' or 'both'"),
        ("[ips]\ntimeout_s = 0\n", "ips.timeout_s", "greater than 0"),
        ("[ips]\nmax_reply_bytes = 0\n", "ips.max_reply_bytes", "greater than 0"),
        ('[ips]\nmax_reply_bytes = "64M"\n', "ips.max_reply_bytes", "valid integer"),
        ('[[companies]]\nhandle = "c|1001"\n', "companies[1].handle", "duplicate handle"),
        ('[[companies]]\nhandle = ""\n', "companies[1].handle", "must not be empty"),
        ('[[companies]]\nhandle = "c|2"\ninterval_s = 0\n', "companies[1].interval_s", "> 0"),
        ('[[companies]]\nname = "no handle"\n', "companies[1].handle", "required key is missing"),
    ],
)
def test_error_names_the_dotted_key(tmp_path: Path, extra: str, key: str, fragment: str) -> None:
    """Bad types, ranges, unknown keys and cross-field rules each name the offending key."""
    # TOML forbids a second [ips] table, so [ips] keys are merged into the existing one.
    text = MINIMAL.replace("[ips]\n", extra) if extra.startswith("[ips]") else MINIMAL + extra
    err = error(tmp_path, text)
    line = next((line for line in str(err).splitlines() if f": {key}: " in line), None)
    assert line is not None, str(err)
    assert fragment.replace("> 0", "greater than 0") in line


def test_max_reply_bytes_default_env_and_client_settings(tmp_path: Path) -> None:
    """ips.max_reply_bytes: 64 MiB (the client's default), overridable, passed to the client."""
    default = load(tmp_path, MINIMAL).ips.max_reply_bytes
    assert default == 64 * 1024 * 1024 == DEFAULT_MAX_REPLY_BYTES
    s = load(tmp_path, MINIMAL, {"STREAMER_IPS__MAX_REPLY_BYTES": "1000000"})
    assert s.ips.max_reply_bytes == 1_000_000
    assert ips_settings_for(s, "c|1001").max_reply_bytes == 1_000_000


def test_overlong_transactional_id_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    """A 40,000-character kafka.transactional_id is refused by name; 249 characters are fine."""
    err = error(tmp_path, MINIMAL + f'[kafka]\ntransactional_id = "{"t" * 40_000}"\n')
    assert err.keys == ("kafka.transactional_id",)
    assert "at most 249 characters" in str(err)
    assert len(str(err)) < 200  # the value is shown shortened, not echoed whole
    longest = load(tmp_path, MINIMAL + f'[kafka]\ntransactional_id = "{"t" * 249}"\n')
    assert len(longest.kafka.transactional_id) == 249


def test_endpoint_must_be_http_url(tmp_path: Path) -> None:
    """ips.endpoint must be http(s) and must not carry credentials (it is logged)."""
    for url in ("ftp://host/x", "s7sps1apissl.scene7.com", f"https://u:{SECRET}@h/x"):
        err = error(tmp_path, MINIMAL.replace("[ips]\n", f'[ips]\nendpoint = "{url}"\n'))
        assert err.keys == ("ips.endpoint",)
        assert SECRET not in str(err)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://host/schemas/", "http:// or https://"),
        ("schemas.example.com/", "http:// or https://"),
        ("https://schemas.example.com/ips", "must end with '/'"),
    ],
)
def test_schema_base_url_must_be_an_http_url_ending_in_a_slash(
    tmp_path: Path, url: str, fragment: str
) -> None:
    """events.schema_base_url is empty or an http(s) URL ending in '/' (the file name follows)."""
    err = error(tmp_path, MINIMAL + f'[events]\nschema_base_url = "{url}"\n')
    assert err.keys == ("events.schema_base_url",)
    assert fragment in str(err)


def test_schema_base_url_default_file_and_env(tmp_path: Path) -> None:
    """events.schema_base_url: "" by default, set in the file, overridden by the environment."""
    assert load(tmp_path, MINIMAL).events.schema_base_url == ""
    url = "https://schemas.example.com/ips/"
    assert (
        load(tmp_path, MINIMAL + f'[events]\nschema_base_url = "{url}"\n').events.schema_base_url
        == url
    )
    env = {"STREAMER_EVENTS__SCHEMA_BASE_URL": "http://h:1/s/"}
    assert load(tmp_path, MINIMAL, env).events.schema_base_url == "http://h:1/s/"


@pytest.mark.parametrize(
    ("events", "http", "port", "expected"),
    [
        ({"schema_base_url": "https://s.example.com/x/"}, {}, 8000, "https://s.example.com/x/"),
        ({}, {}, 8000, "http://127.0.0.1:8000/schemas/"),
        ({}, {"host": "10.1.2.3"}, 41234, "http://10.1.2.3:41234/schemas/"),
        ({}, {"host": "0.0.0.0"}, 8000, "http://streamer-7.example.net:8000/schemas/"),
        ({}, {"host": "::"}, 8000, "http://streamer-7.example.net:8000/schemas/"),
        ({}, {"host": "::1"}, 8000, "http://[::1]:8000/schemas/"),
        ({}, {"enabled": False}, None, SCHEMA_ID_BASE),
    ],
)
def test_schema_base_url_defaults_to_the_own_endpoint(
    events: dict[str, str], http: dict[str, object], port: int | None, expected: str
) -> None:
    """ce_dataschema's base: the configured URL, else the daemon's own /schemas/ on the bound
    port (its listen address, or the FQDN when it listens on every address), else the ids."""
    cfg = Settings(
        ips=IpsConfig(user="u", password=SecretStr("p")),
        companies=(CompanyConfig(handle="c|1"),),
        events=EventsConfig(**events),
        http=HttpConfig(**http),
    )
    assert schema_base_url(cfg, port, lambda: "streamer-7.example.net") == expected


def test_missing_companies(tmp_path: Path) -> None:
    """A config without [[companies]] is refused, naming `companies`."""
    err = error(tmp_path, '[ips]\nuser = "u"\npassword = "p"\n')
    assert str(err) == "config error: companies: at least one [[companies]] table is required"


def test_sasl_without_credentials_names_each_key(tmp_path: Path) -> None:
    """A SASL protocol without mechanism, user and password names all three keys."""
    err = error(tmp_path, MINIMAL + '[kafka]\nsecurity_protocol = "SASL_SSL"\n')
    assert err.keys == ("kafka.sasl_mechanism", "kafka.sasl_username", "kafka.sasl_password")
    assert "required when security_protocol is SASL_SSL" in str(err)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """Malformed TOML is refused with the file and the line of the fault."""
    err = error(tmp_path, f'[ips]\nuser = "u"\npassword = "{SECRET}\n')
    assert err.keys == (str(tmp_path / "streamer.toml"),)
    assert "invalid TOML" in str(err)
    assert "line 3" in str(err)
    assert SECRET not in str(err)


def test_missing_config_file(tmp_path: Path) -> None:
    """A config path that does not exist is an error, not an empty config."""
    with pytest.raises(ConfigError, match="cannot read config file: No such file"):
        load_config(tmp_path / "absent.toml", {})


def test_missing_password_file(tmp_path: Path) -> None:
    """An unreadable password_file is refused, naming the key and the path."""
    missing = tmp_path / "nope"
    err = error(
        tmp_path, f'[ips]\nuser = "u"\npassword_file = "{missing}"\n[[companies]]\nhandle = "c|1"\n'
    )
    assert err.keys == ("ips.password_file",)
    assert str(missing) in str(err)
    assert "No such file" in str(err)


def test_password_and_password_file_conflict(tmp_path: Path) -> None:
    """Setting both password and password_file is ambiguous and refused."""
    pw = tmp_path / "pw"
    pw.write_text("x", encoding="utf-8")
    err = error(tmp_path, MINIMAL.replace("[ips]\n", f'[ips]\npassword_file = "{pw}"\n'))
    assert err.keys == ("ips.password_file",)


def test_company_without_any_password_or_user(tmp_path: Path) -> None:
    """When neither the company nor [ips] gives a user/password, ips.user/ips.password are named."""
    err = error(
        tmp_path,
        '[[companies]]\nhandle = "c|1"\n[[companies]]\nhandle = "c|2"\n'
        'user = "own"\npassword = "own"\n',
    )
    assert err.keys == ("ips.user", "ips.password")
    assert "c|1" in str(err)
    assert "c|2" not in str(err)


def test_empty_password_is_refused(tmp_path: Path) -> None:
    """An empty password (e.g. an unset variable expanded to "") is an error, not a credential."""
    err = error(tmp_path, MINIMAL, {"STREAMER_IPS__PASSWORD": ""})
    assert str(err) == (
        "config error: ips.password: must not be empty (from environment STREAMER_IPS__PASSWORD)"
    )


def test_env_errors_name_the_variable(tmp_path: Path) -> None:
    """A bad value from the environment names both the key and the variable."""
    err = error(tmp_path, MINIMAL, {"STREAMER_HTTP__PORT": "http"})
    assert err.keys == ("http.port",)
    assert "(from environment STREAMER_HTTP__PORT)" in str(err)
    bad_json = error(tmp_path, MINIMAL, {"STREAMER_COMPANIES": "c|1,c|2"})
    assert str(bad_json) == (
        "config error: companies: cannot parse STREAMER_COMPANIES from the environment as JSON"
    )


def test_several_errors_one_line_each(tmp_path: Path) -> None:
    """Independent errors are all reported, one `config error:` line each."""
    err = error(tmp_path, MINIMAL + "[poll]\ninterval_s = 0\njitter = 2\n[http]\nport = -1\n")
    assert err.keys == ("poll.interval_s", "poll.jitter", "http.port")
    assert all(line.startswith("config error: ") for line in str(err).splitlines())
    assert len(str(err).splitlines()) == 3


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_absent_from_repr_str_and_dumps(tmp_path: Path) -> None:
    """repr, str, JSON dump and redacted() of loaded settings never contain a password."""
    pw = tmp_path / "kafka-pw"
    pw.write_text(SECRET + "-kafka\n", encoding="utf-8")
    text = MINIMAL + (
        f'[kafka]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
        f'sasl_username = "k"\nsasl_password_file = "{pw}"\n'
    )
    s = load(tmp_path, text)
    for shown in (
        repr(s),
        str(s),
        s.model_dump_json(),
        json.dumps(s.redacted()),
        repr(s.credentials_for("c|1001")),
        repr(s.kafka),
    ):
        assert SECRET not in shown
    assert s.redacted()["ips"]["password"] == "**********"
    assert s.redacted()["kafka"]["sasl_password_file"] == str(pw)
    assert s.kafka.client_kwargs()["sasl_plain_password"] == SECRET + "-kafka"


def test_wsdl_url_credentials_are_redacted_in_status_and_repr(tmp_path: Path) -> None:
    """A WSDL URL's user:password is kept for fetching, but not shown by redacted() or repr."""
    url = f"https://wsdl-user:{SECRET}@s7sps1apissl.scene7.com/IpsApi-2014-04-03.wsdl"
    s = load(tmp_path, MINIMAL.replace("[ips]\n", f'[ips]\nwsdl = "{url}"\n'))
    assert s.ips.wsdl == url
    assert s.ips.wsdl_location() == url
    shown = "https://***@s7sps1apissl.scene7.com/IpsApi-2014-04-03.wsdl"
    assert s.redacted()["ips"]["wsdl"] == shown
    for text in (json.dumps(s.redacted()), s.model_dump_json(), repr(s), str(s), repr(s.ips)):
        assert SECRET not in text
        assert "wsdl-user" not in text
    plain = load(tmp_path, MINIMAL.replace("[ips]\n", '[ips]\nwsdl = "https://h/IpsApi.wsdl"\n'))
    assert plain.redacted()["ips"]["wsdl"] == "https://h/IpsApi.wsdl"
    assert load(tmp_path, MINIMAL).redacted()["ips"]["wsdl"] is None


def test_bad_wsdl_with_credentials_is_not_echoed(tmp_path: Path) -> None:
    """An unusable ips.wsdl is named without quoting it (it may carry a password)."""
    err = error(tmp_path, MINIMAL.replace("[ips]\n", f'[ips]\nwsdl = "ftp://u:{SECRET}@h/x"\n'))
    assert err.keys == ("ips.wsdl",)
    assert SECRET not in str(err)


NUMERIC_SECRET = "9081726354"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (MINIMAL + "[poll]\ninterval_s = -1\n", SECRET),  # unrelated error beside a password
        (MINIMAL.replace(f'password = "{SECRET}"', f'pasword = "{SECRET}"'), SECRET),  # misspelt
        (MINIMAL.replace(f'"{SECRET}"', NUMERIC_SECRET), NUMERIC_SECRET),  # not a TOML string
        (MINIMAL.replace(f'"{SECRET}"', f'["{SECRET}"]'), SECRET),
        (MINIMAL + f'[[companies]]\nhandle = "c|2"\npassword = "{SECRET}"\npasswd = 1\n', SECRET),
        (MINIMAL + f"[kafka]\nsasl_password = {NUMERIC_SECRET}\n", NUMERIC_SECRET),
        (MINIMAL + f'[kafka]\nsasl_password = "{SECRET}"\nsasl_password_file = "/x"\n', SECRET),
    ],
)
def test_secrets_absent_from_config_errors(tmp_path: Path, text: str, secret: str) -> None:
    """A ConfigError never quotes a password, even a misspelt or mistyped one."""
    err = error(tmp_path, text)
    assert secret not in str(err)
    assert err.__cause__ is None  # no chained ValidationError quoting inputs in a traceback
    assert err.__suppress_context__


def test_settings_are_frozen(tmp_path: Path) -> None:
    """Loaded settings cannot be changed after start."""
    s = load(tmp_path, MINIMAL)
    with pytest.raises(ValidationError, match="frozen"):
        s.poll.interval_s = 1  # type: ignore[misc]


# --- resolution ---------------------------------------------------------------------------------


def test_password_file_is_read_and_stripped(tmp_path: Path) -> None:
    """password_file content, minus surrounding whitespace, is the password."""
    pw = tmp_path / "ips-pw"
    pw.write_text("  from-file \n", encoding="utf-8")
    s = load(tmp_path, f'[ips]\nuser = "u"\npassword_file = "{pw}"\n[[companies]]\nhandle = "c"\n')
    assert s.credentials_for("c") == ("u", "from-file")
    pw.write_text("changed", encoding="utf-8")
    assert s.credentials_for("c").password == "from-file"  # read once, at load


def test_per_company_overrides(tmp_path: Path) -> None:
    """A company's own user, password(_file) and interval replace the [ips] / [poll] defaults."""
    pw = tmp_path / "c3"
    pw.write_text("c3-pw", encoding="utf-8")
    s = load(
        tmp_path,
        MINIMAL
        + (
            '[[companies]]\nhandle = "c|2"\nuser = "own@x"\npassword = "own-pw"\ninterval_s = 30\n'
            f'[[companies]]\nhandle = "c|3"\npassword_file = "{pw}"\n'
            "[poll]\ninterval_s = 4\n"
        ),
    )
    assert s.credentials_for("c|1001") == ("api@example.com", SECRET)
    assert s.credentials_for("c|2") == ("own@x", "own-pw")
    assert s.credentials_for(s.companies[2]) == ("api@example.com", "c3-pw")
    assert [s.interval_for(c) for c in s.companies] == [4.0, 30.0, 4.0]
    with pytest.raises(KeyError):
        s.credentials_for("c|404")


def test_kafka_client_kwargs_plaintext() -> None:
    """PLAINTEXT kwargs carry no SASL or TLS settings and the timeout in ms."""
    kw = KafkaConfig(bootstrap_servers="b:1", request_timeout_s=2.5).client_kwargs()
    assert kw == {
        "bootstrap_servers": "b:1",
        "client_id": "ips-job-streamer",
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 2500,
    }


def test_kafka_client_kwargs_sasl_ssl() -> None:
    """SASL_SSL kwargs carry the SASL credentials and an SSL context."""
    kafka = KafkaConfig(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="k",
        sasl_password=SecretStr("kpw"),
    )
    kw = kafka.client_kwargs()
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "k",
        "kpw",
    )
    assert isinstance(kw["ssl_context"], ssl.SSLContext)


def test_invalid_company_entry_is_not_reported_as_no_companies(tmp_path: Path) -> None:
    """One bad [[companies]] table gives one error naming its key, not 'no companies'."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[ips]\nuser = "u@example.com"\npassword = "pw-123456"\n'
        '[[companies]]\nhandle = "c|1"\nbogus = 1\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "companies[0].bogus" in text
    assert "at least one" not in text
