"""The IPS password never leaves the process: not in logs, /status, /metrics, `streamer check`
output, records on the topics, or configuration error messages.

Two runs with distinctive passwords: one that IPS accepts (log level debug, so every log line the
streamer can write is captured), and one with a wrong password, whose authentication failures
are logged loudly and published as a notification.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import (
    Simulator,
    all_records,
    parse_log,
    run_cli,
    running_streamer,
    simulator,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
#: Accepted by the simulator; distinctive, so that any leak is found by a substring search.
SECRET = f"Pw{uuid.uuid4().hex}Zx!"
#: Sent by the second run, refused by the simulator.
WRONG = f"Wr{uuid.uuid4().hex}Qy!"


@dataclass
class Outputs:
    """Everything an operator can see of one run."""

    log: str
    status: str
    metrics: str
    check: str
    check_rc: int
    topics: bytes

    def texts(self) -> dict[str, str]:
        """Each output by name (the topics' bytes decoded)."""
        return {
            "log": self.log,
            "/status": self.status,
            "/metrics": self.metrics,
            "check": self.check,
            "topics": self.topics.decode("utf-8", "replace"),
        }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A simulator that accepts only :data:`SECRET`."""
    tmp = tmp_path_factory.mktemp("ops-secrets-sim")
    with simulator(
        tmp, "--company", COMPANIES[0], "--company", COMPANIES[1], "--jobs-per-company", "2",
        "--speedup", "20", password=SECRET,
    ) as running:  # fmt: skip
        yield running


def observe(
    sim: Simulator, bootstrap: str, tmp: Path, password: str, until: str, companies_ok: bool
) -> Outputs:
    """Run a streamer with ``password`` until ``until`` was logged, then collect its outputs."""
    prefix = f"opssec{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp / "streamer.toml",
        endpoint=sim.endpoint,
        bootstrap=bootstrap,
        prefix=prefix,
        companies=COMPANIES,
        interval_s=0.3,
        transactional_id=f"{prefix}-{uuid.uuid4().hex[:6]}",
        password=password,
        sections={"log": {"level": "debug"}},
    )
    log = tmp / "streamer.log"
    with running_streamer(config, log, until=until) as streamer:
        if companies_ok:
            wait_until(
                lambda: all(streamer.company(c)["cycles"] >= 5 for c in COMPANIES), 20, what="5"
            )
        _, status = streamer.get("/status")
        _, metrics = streamer.get("/metrics")
        check = run_cli("check", "--config", str(config))
    records = all_records(bootstrap, prefix)
    raw = b"".join(
        (key or b"") + (value or b"") + b"".join(k.encode() + v for k, v in headers)
        for recs in records.values()
        for _, key, value, headers in recs
    )
    return Outputs(
        log.read_text(), status, metrics, check.stdout + check.stderr, check.returncode, raw
    )


@pytest.fixture(scope="module")
def accepted(
    sim: Simulator, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Outputs:
    """Outputs of a run whose password IPS accepts."""
    tmp = tmp_path_factory.mktemp("ops-secrets-ok")
    return observe(sim, kafka_bootstrap, tmp, SECRET, "company_cycle", companies_ok=True)


@pytest.fixture(scope="module")
def refused(
    sim: Simulator, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Outputs:
    """Outputs of a run whose password IPS refuses."""
    tmp = tmp_path_factory.mktemp("ops-secrets-wrong")
    return observe(sim, kafka_bootstrap, tmp, WRONG, "ips_authentication_failed", False)


def test_password_absent_from_every_output_of_a_working_run(accepted: Outputs) -> None:
    """A working run at log level debug shows the password nowhere an operator can look."""
    assert '"company_cycle"' in accepted.log  # the outputs are real: the run worked
    assert '"password": "**********"' in accepted.status
    assert "streamer_polls_total" in accepted.metrics
    assert accepted.check_rc == 0, accepted.check
    assert accepted.topics
    for name, text in accepted.texts().items():
        assert SECRET not in text, name


def test_wrong_password_absent_although_authentication_failure_is_loud(refused: Outputs) -> None:
    """A refused password is logged as an error naming the company, never as itself."""
    failures = [r for r in parse_log(refused.log) if r.get("event") == "ips_authentication_failed"]
    assert failures
    assert {r["level"] for r in failures} == {"error"}
    assert {r["company"] for r in failures} == set(COMPANIES)
    assert "AuthenticationFault 10001" in failures[0]["error"]
    assert "authentication_failing" in refused.topics.decode()
    assert refused.check_rc == 1
    for company in COMPANIES:
        assert f"ips {company}: FAILED (fault_authentication)" in refused.check
    for name, text in refused.texts().items():
        assert WRONG not in text, name
        assert SECRET not in text, name


VALID = f"""
[ips]
endpoint = "http://127.0.0.1:9/scene7/services/IpsApiService"
user = "ops@example.com"
password = "{SECRET}"

[[companies]]
handle = "c|1001"
"""

BAD_CONFIGS = {
    "misspelt key": (VALID.replace("password =", "pasword ="), "ips.pasword"),
    "credentials in endpoint": (
        VALID.replace("http://127.0.0.1", f"http://ops:{SECRET}@127.0.0.1"),
        "ips.endpoint",
    ),
    "password of wrong type": (
        VALID.replace(f'password = "{SECRET}"', f'password = ["{SECRET}"]'),
        "ips.password",
    ),
    "misspelt company key": (VALID + f'passwrd = "{SECRET}"\n', "companies[0].passwrd"),
    "unterminated string": (VALID.replace(f'"{SECRET}"', f'"{SECRET}'), "invalid TOML"),
    "bare value": (VALID.replace(f'"{SECRET}"', SECRET), "invalid TOML"),
    "sasl without mechanism": (
        VALID + f'\n[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_password = "{SECRET}"\n',
        "kafka.sasl_mechanism",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_errors_never_echo_the_password(case: str, tmp_path: Path) -> None:
    """A bad config next to (or inside) the password fails with exit 2 naming the key only."""
    text, key = BAD_CONFIGS[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("config error: ")
    assert key in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    ("companies", "key"),
    [
        (f'[{{"handle": "c|1", "password": "{SECRET}", "bogus": 1}}]', "companies[0].bogus"),
        (f'[{{"handle": "c|1", "password": "{SECRET}"', "cannot parse STREAMER_COMPANIES"),
    ],
)
def test_config_errors_from_environment_never_echo_the_password(
    companies: str, key: str, tmp_path: Path
) -> None:
    """A bad STREAMER_COMPANIES holding a password fails `streamer run` naming the key only."""
    path = tmp_path / "base.toml"
    path.write_text(VALID.split("[[companies]]")[0])
    result = run_cli("run", "--config", str(path), env={"STREAMER_COMPANIES": companies})
    assert result.returncode == 2, result.stdout + result.stderr
    assert key in result.stderr
    assert SECRET not in result.stdout + result.stderr
