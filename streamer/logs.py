"""structlog set-up: JSON lines when stderr is not a terminal, readable output when it is.

Every line written, by the streamer or by a library through stdlib logging, passes a
:class:`Redactor` first: the configured secrets (IPS and SASL passwords) and the password part of
any ``scheme://user:password@`` URL are masked. Libraries print more than we control: at debug
level aiokafka logs each request it sends, and a SASL PLAIN handshake request carries the password.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import structlog

if TYPE_CHECKING:
    from streamer.config import Settings

MASK = "**********"
# The password of user:password@ in a URL (the user name stays: it helps and is no secret).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s/@'\"]+(?=@)")


def _spellings(secret: str) -> set[str]:
    """The ways a secret can appear in a log line: as is, and escaped the way Python's ``repr``
    of a str or of bytes (aiokafka logs request structs), JSON, or a URL would write it."""
    raw = secret.encode("utf-8")
    forms = {
        secret,
        repr(secret)[1:-1],
        repr(raw)[2:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret),
    }
    return {f for f in forms if f}


class Redactor:
    """Masks known secret values (in any of their usual spellings) and URL passwords in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {f for s in secrets if s for f in _spellings(s)}
        # Longest first: a spelling that contains another must win.
        alternatives = sorted(forms, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, alternatives))) if forms else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret and URL password replaced by :data:`MASK`."""
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


class RedactingFilter(logging.Filter):
    """A stdlib logging filter that redacts a record's message, exception and stack text."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (its arguments are merged into the message); keep it."""
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def secrets_of(settings: Settings) -> list[str]:
    """The secret values of a configuration: IPS passwords (shared and per company), the SASL
    password, and passwords embedded in URLs."""
    values = [settings.ips.resolved_password, settings.kafka.resolved_sasl_password]
    values += [c.resolved_password for c in settings.companies]
    out = [v.get_secret_value() for v in values if v is not None]
    for url in (settings.ips.wsdl, settings.ips.endpoint):
        password = urlsplit(url).password if url else None
        if password:
            out.append(password)
    return out


def configure(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog (and stdlib logging of libraries) once, at process start.

    ``secrets`` are masked in every line written (see :func:`secrets_of`).
    """
    redact = Redactor(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )

    def redact_line(_logger: Any, _method: str, line: Any) -> Any:
        # Runs after the renderer: the whole line, exception text included, is one string.
        return redact(line) if isinstance(line, str) else line

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
            redact_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library loggers (aiokafka, zeep, aiohttp) go to stderr at WARNING and above.
    # aiokafka logs every failed reconnect at ERROR; the streamer reports Kafka outages itself
    # (kafka_unavailable / kafka_recovered), so keep its own chatter for debugging.
    logging.getLogger("aiokafka").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    # On the handlers, not the loggers: a logger's filter does not see its children's records.
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(redact))
