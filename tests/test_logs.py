"""Log redaction: configured secrets and URL passwords never reach a log line, in whatever
spelling a library prints them (repr of str or bytes, JSON, percent-encoding)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from streamer.config import CompanyConfig, IpsConfig, KafkaConfig, Settings
from streamer.logs import MASK, RedactingFilter, Redactor, configure, secrets_of

SECRET = "s3cr'et\\pä ss"


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        repr(SECRET)[1:-1],
        repr(SECRET.encode())[2:-1],
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        "s3cr%27et%5Cp%C3%A4%20ss",
    ],
)
def test_every_usual_spelling_of_a_secret_is_masked(spelling: str) -> None:
    """The secret as is, repr-escaped (str and bytes), JSON-escaped or percent-encoded."""
    assert Redactor([SECRET])(f"before {spelling} after") == f"before {MASK} after"


def test_url_passwords_are_masked_without_being_configured() -> None:
    """user:password@ in any URL loses its password; user, host and plain host:port stay."""
    redact = Redactor()
    assert redact("GET https://ops:hunter2@ips.example.com/x.wsdl failed") == (
        f"GET https://ops:{MASK}@ips.example.com/x.wsdl failed"
    )
    assert redact('{"url": "http://a:b@h:8080/p"}') == f'{{"url": "http://a:{MASK}@h:8080/p"}}'
    assert redact("http://127.0.0.1:8080/path?q=a@b") == "http://127.0.0.1:8080/path?q=a@b"


def test_text_without_secrets_is_unchanged() -> None:
    """Redaction changes nothing else, also with no secrets configured."""
    line = '{"event": "company_cycle", "company": "c|1001", "jobs": 3}'
    assert Redactor(["unrelated-value"])(line) == line
    assert Redactor()(line) == line


def test_logging_filter_redacts_message_arguments_and_exception_text() -> None:
    """A stdlib record's formatted message and its traceback text are both masked."""
    try:
        raise ValueError(f"bad password {SECRET}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "aiokafka.conn", logging.DEBUG, __file__, 1, "Request %s: %r", ("x", SECRET.encode()),
        exc_info,
    )  # fmt: skip
    assert RedactingFilter(Redactor([SECRET])).filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert SECRET not in text
    assert repr(SECRET.encode()) not in text
    assert f'Request x: b"{MASK}"' in text
    assert f"ValueError: bad password {MASK}" in text


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """structlog's global configuration is put back after the test."""
    try:
        yield
    finally:
        structlog.reset_defaults()


@pytest.mark.usefixtures("restore_structlog")
def test_configure_masks_secrets_in_structlog_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A streamer log line holding a secret (say, in an error text) is written masked."""
    configure("info", "json", [SECRET])
    structlog.get_logger("t").warning("poll_failed", error=f"auth {SECRET} refused")
    line = capsys.readouterr().err.strip()
    assert json.loads(line)["error"] == f"auth {MASK} refused"


def test_secrets_of_collects_every_configured_password() -> None:
    """IPS (shared and per company), SASL and URL-embedded passwords are all collected."""
    settings = Settings(
        ips=IpsConfig(user="u", password="ips-pw", wsdl="https://w:wsdl-pw@host/IpsApi.wsdl"),
        companies=(CompanyConfig(handle="c|1"), CompanyConfig(handle="c|2", password="c2-pw")),
        kafka=KafkaConfig(
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_username="k",
            sasl_password="sasl-pw",
        ),
    )
    assert sorted(secrets_of(settings)) == ["c2-pw", "ips-pw", "sasl-pw", "wsdl-pw"]
