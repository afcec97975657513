"""IpsClient over real HTTP: a tiny aiohttp server records each request and answers a fixture."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import structlog.testing
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from streamer.ips import (
    DEFAULT_WSDL,
    AuthenticationFault,
    AuthorizationFault,
    IpsApiFault,
    IpsClient,
    IpsError,
    IpsFault,
    IpsReplyError,
    IpsSettings,
    IpsTransportError,
)
from streamer.ips.errors import redact_url, redact_urls
from streamer.model import Snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "ips"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS14 = "http://www.scene7.com/IpsApi/xsd/2014-04-03"
PASSWORD = "s3cr3t-Pa55word!"
SERVICE_PATH = "/scene7/services/IpsApiService"
WSDL_BYTES = Path(DEFAULT_WSDL).read_bytes()


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def envelope(self) -> etree._Element:
        """The request body parsed as XML."""
        return etree.fromstring(self.body)


@dataclass
class FakeIps:
    """A scripted IPS endpoint: answers ``status``/``body``, optionally hangs; records requests."""

    server: TestServer
    status: int = 200
    body: bytes = b""
    hang: bool = False
    requests: list[Recorded] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    wsdl_status: int = 200
    wsdl_requests: list[Recorded] = field(default_factory=list)

    def answer(self, fixture: str, status: int = 200) -> None:
        """Answer every request with a fixture file and status."""
        self.body = (FIXTURES / fixture).read_bytes()
        self.status = status

    @property
    def url(self) -> str:
        """The service URL."""
        return str(self.server.make_url(SERVICE_PATH))


@pytest.fixture
async def ips() -> AsyncIterator[FakeIps]:
    """A running fake IPS service (also serves the shipped WSDL at ``/IpsApi.wsdl``)."""
    app = web.Application()
    fake = FakeIps(server=TestServer(app))

    async def service(request: web.Request) -> web.Response:
        fake.requests.append(
            Recorded(request.method, request.path, dict(request.headers), await request.read())
        )
        if fake.hang:
            await fake.release.wait()
        return web.Response(status=fake.status, body=fake.body, content_type="text/xml")

    async def wsdl(request: web.Request) -> web.Response:
        fake.wsdl_requests.append(
            Recorded(request.method, request.path, dict(request.headers), b"")
        )
        return web.Response(status=fake.wsdl_status, body=WSDL_BYTES, content_type="text/xml")

    app.router.add_post(SERVICE_PATH, service)
    app.router.add_get("/IpsApi.wsdl", wsdl)
    await fake.server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        await fake.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session, closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


def settings_for(url: str, **overrides: object) -> IpsSettings:
    """Settings for the fake server."""
    base: dict[str, object] = {
        "endpoint": url,
        "user": "poller@example.com",
        "password": PASSWORD,
        "app_version": "9.9.9",
        "locale": "en-US",
        "timeout_s": 5.0,
    }
    base.update(overrides)
    return IpsSettings(**base)  # type: ignore[arg-type]


async def client_for(
    ips: FakeIps, session: aiohttp.ClientSession, **overrides: object
) -> IpsClient:
    """A client on the shipped WSDL talking to the fake server."""
    return await IpsClient.create(settings_for(ips.url, **overrides), session)


def local_children(element: etree._Element) -> list[tuple[str, str | None]]:
    """(namespace-qualified tag, text) of each child, in order."""
    return [(str(c.tag), c.text) for c in element]


# ------------------------------------------------------------------------------------------
# Requests
# ------------------------------------------------------------------------------------------


async def test_get_active_jobs_request_shape(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """POST with SOAPAction, text/xml, body param in 2014 namespace, authHeader in order."""
    ips.answer("active_jobs_one.xml")
    client = await client_for(ips, session)
    snapshot = await client.get_active_jobs("c|110")
    assert isinstance(snapshot, Snapshot)
    assert snapshot.company_handle == "c|110"
    assert len(snapshot.jobs) == 1
    (req,) = ips.requests
    assert (req.method, req.path) == ("POST", SERVICE_PATH)
    assert req.headers["SOAPAction"] == '"getActiveJobs"'
    assert req.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert "Authorization" not in req.headers
    env = req.envelope()
    assert env.tag == f"{{{SOAP11}}}Envelope"
    header, body = list(env)
    assert header.tag == f"{{{SOAP11}}}Header"
    assert body.tag == f"{{{SOAP11}}}Body"
    (auth,) = list(header)
    assert auth.tag == f"{{{NS14}}}authHeader"
    assert local_children(auth) == [
        (f"{{{NS14}}}user", "poller@example.com"),
        (f"{{{NS14}}}password", PASSWORD),
        (f"{{{NS14}}}locale", "en-US"),
        (f"{{{NS14}}}appName", "ips-job-streamer"),
        (f"{{{NS14}}}appVersion", "9.9.9"),
    ]
    (param,) = list(body)
    assert param.tag == f"{{{NS14}}}getActiveJobsParam"
    assert local_children(param) == [(f"{{{NS14}}}companyHandle", "c|110")]


async def test_include_waiting_jobs_sent_when_set(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """``includeWaitingJobs`` follows companyHandle when configured and the WSDL has it."""
    ips.answer("active_jobs_empty.xml")
    client = await client_for(ips, session, include_waiting_jobs=True)
    await client.get_active_jobs("c|1")
    param = ips.requests[0].envelope()[1][0]
    assert local_children(param) == [
        (f"{{{NS14}}}companyHandle", "c|1"),
        (f"{{{NS14}}}includeWaitingJobs", "true"),
    ]


@pytest.mark.parametrize(
    ("auth", "basic", "in_header"),
    [
        ("header", False, True),
        ("basic", True, False),
        ("both", True, True),
    ],
)
async def test_auth_modes(
    ips: FakeIps, session: aiohttp.ClientSession, auth: str, basic: bool, in_header: bool
) -> None:
    """HTTP Basic and/or authHeader credentials as configured; appName always in the header."""
    ips.answer("active_jobs_empty.xml")
    client = await client_for(ips, session, auth=auth)
    await client.get_active_jobs("c|1")
    (req,) = ips.requests
    token = base64.b64encode(f"poller@example.com:{PASSWORD}".encode()).decode()
    assert req.headers.get("Authorization") == (f"Basic {token}" if basic else None)
    names = [etree.QName(c).localname for c in req.envelope()[0][0]]
    assert ("user" in names, "password" in names) == (in_header, in_header)
    assert "appName" in names
    assert "appVersion" in names


async def test_get_job_log_request_and_result(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """getJobLogDetails is sent with companyHandle and jobHandle; the JobLog is returned."""
    ips.answer("job_log_details_fatal.xml")
    client = await client_for(ips, session)
    log = await client.get_job_log("c|110", "j|110||fatal|4")
    assert log is not None
    assert log.fatal_error
    assert log.job_handle == "j|110||fatal|4"
    (req,) = ips.requests
    assert req.headers["SOAPAction"] == '"getJobLogDetails"'
    param = req.envelope()[1][0]
    assert param.tag == f"{{{NS14}}}getJobLogDetailsParam"
    assert local_children(param) == [
        (f"{{{NS14}}}companyHandle", "c|110"),
        (f"{{{NS14}}}jobHandle", "j|110||fatal|4"),
    ]


async def test_get_job_log_empty_is_none(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """An empty jobLogArray means no log yet: None."""
    ips.answer("job_log_details_empty.xml")
    client = await client_for(ips, session)
    assert await client.get_job_log("c|110", "j|1") is None


async def test_job_log_of_another_job_is_no_log(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """A log carrying another jobHandle is not taken: None, and a warning names both handles."""
    ips.answer("job_log_details_fatal.xml")
    client = await client_for(ips, session)
    with structlog.testing.capture_logs() as logs:
        assert await client.get_job_log("c|110", "j|110||other|9") is None
    (warning,) = [e for e in logs if e["event"] == "job_log_handle_mismatch"]
    assert warning["log_level"] == "warning"
    assert (warning["job_handle"], warning["returned_job_handle"]) == (
        "j|110||other|9",
        "j|110||fatal|4",
    )


async def test_job_log_matching_the_handle_is_picked_among_several(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """Among several logs, the one whose jobHandle was asked for is returned, wherever it is."""
    body = (FIXTURES / "job_log_details_fatal.xml").read_bytes()
    start = body.index(b"<items>")
    end = body.rindex(b"</items>") + len(b"</items>")
    other = body[start:end].replace(b"j|110||fatal|4", b"j|110||other|9")
    ips.body = body[:start] + other + body[start:]
    client = await client_for(ips, session)
    log = await client.get_job_log("c|110", "j|110||fatal|4")
    assert log is not None
    assert log.job_handle == "j|110||fatal|4"


async def test_get_job_logs(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """getJobLogs sends its filters in schema order and returns every log."""
    ips.answer("job_logs.xml")
    client = await client_for(ips, session)
    logs = await client.get_job_logs("c|110", num_rows=50, sort_by="StartDate")
    assert len(logs) == 3
    param = ips.requests[0].envelope()[1][0]
    assert [etree.QName(c).localname for c in param] == ["companyHandle", "sortBy", "numRows"]


async def test_empty_job_array_is_empty_snapshot(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """An empty jobArray is a successful, empty Snapshot."""
    ips.answer("active_jobs_empty.xml")
    client = await client_for(ips, session)
    assert await client.get_active_jobs("c|9") == Snapshot(company_handle="c|9", jobs=())


async def test_wsdl_fetched_from_url(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """A WSDL URL is fetched with the session; the endpoint override is used for calls."""
    ips.answer("active_jobs_one.xml")
    wsdl_url = str(ips.server.make_url("/IpsApi.wsdl"))
    client = await IpsClient.create(settings_for(ips.url, wsdl=wsdl_url), session)
    assert client.namespace == NS14
    assert client.endpoint == ips.url
    assert len((await client.get_active_jobs("c|110")).jobs) == 1


async def test_large_reply_decoded_off_loop(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """A reply above the thread threshold decodes to the same jobs."""
    one = (FIXTURES / "active_jobs_one.xml").read_bytes()
    start, end = one.index(b"<items>"), one.rindex(b"</items>") + len(b"</items>")
    ips.body = one[:start] + one[start:end] * 400 + one[end:]
    assert len(ips.body) > 256 * 1024
    client = await client_for(ips, session)
    assert len((await client.get_active_jobs("c|110")).jobs) == 400


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "status", "cls", "code"),
    [
        ("fault_authentication.xml", 500, AuthenticationFault, 10001),
        ("fault_authorization.xml", 500, AuthorizationFault, 20003),
        ("fault_ipsapi.xml", 500, IpsApiFault, 30000),
        ("fault_ipsapi.xml", 200, IpsApiFault, 30000),
        ("fault_authentication.xml", 200, AuthenticationFault, 10001),
    ],
)
async def test_fault_is_typed(
    ips: FakeIps,
    session: aiohttp.ClientSession,
    fixture: str,
    status: int,
    cls: type[IpsFault],
    code: int,
) -> None:
    """A SOAP fault (HTTP 500, or 200 with faultHttpStatusCode) raises the typed fault."""
    ips.answer(fixture, status)
    client = await client_for(ips, session)
    with pytest.raises(cls) as info:
        await client.get_active_jobs("c|110")
    assert info.value.code == code


async def test_fault_reason_never_shows_password(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """A server echoing the password in a fault does not leak it into the error."""
    ips.body = (
        (FIXTURES / "fault_authentication.xml")
        .read_bytes()
        .replace(b"Invalid user or password", f"bad password {PASSWORD}".encode())
    )
    ips.status = 500
    client = await client_for(ips, session)
    with pytest.raises(AuthenticationFault) as info:
        await client.get_active_jobs("c|110")
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in info.value.reason


async def test_huge_fault_reason_reaches_callers_as_an_excerpt(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """A 3 MB fault reason is cut in str() (what logs and /status show), scrubbed first."""
    prefix = "IpsApiFault 30000: "
    # The password straddles the cut: masking must happen on the whole text, before cutting.
    reason = "x" * (500 - len(prefix) - 4) + PASSWORD + "y" * 3_000_000
    ips.body = (
        (FIXTURES / "fault_ipsapi.xml")
        .read_bytes()
        .replace(b"Unexpected error: company handle c|999 not found", reason.encode())
    )
    ips.status = 500
    client = await client_for(ips, session)
    with pytest.raises(IpsApiFault) as info:
        await client.get_active_jobs("c|110")
    message = str(info.value)
    assert message.startswith(prefix + "xxx")
    assert len(message) < 550
    assert message.endswith(" chars)")
    assert PASSWORD[:4] not in message
    assert info.value.code == 30000


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (503, b"<html>Service Unavailable</html>", "http_5xx"),
        (500, b"<html>Internal Server Error</html>", "http_5xx"),
        (404, b"not found", "http_4xx"),
        (401, b"", "http_4xx"),
    ],
)
async def test_http_error_without_fault_is_transport_error(
    ips: FakeIps, session: aiohttp.ClientSession, status: int, body: bytes, kind: str
) -> None:
    """A non-2xx status without a SOAP fault is IpsTransportError with an http kind."""
    ips.status, ips.body = status, body
    client = await client_for(ips, session)
    with pytest.raises(IpsTransportError) as info:
        await client.get_active_jobs("c|110")
    assert (info.value.kind, info.value.status) == (kind, status)


async def test_timeout(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """No reply within ``timeout_s`` is IpsTransportError(kind="timeout")."""
    ips.answer("active_jobs_empty.xml")
    ips.hang = True
    client = await client_for(ips, session, timeout_s=0.2)
    with pytest.raises(IpsTransportError) as info:
        await client.get_active_jobs("c|110")
    assert info.value.kind == "timeout"


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    """A closed port is IpsTransportError(kind="connection")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = await IpsClient.create(settings_for(f"http://127.0.0.1:{port}{SERVICE_PATH}"), session)
    with pytest.raises(IpsTransportError) as info:
        await client.get_active_jobs("c|110")
    assert info.value.kind == "connection"
    assert PASSWORD not in str(info.value)


async def test_truncated_reply_is_reply_error(ips: FakeIps, session: aiohttp.ClientSession) -> None:
    """A truncated 200 reply is IpsReplyError, never a shorter snapshot."""
    ips.answer("active_jobs_truncated.xml")
    client = await client_for(ips, session)
    with pytest.raises(IpsReplyError) as info:
        await client.get_active_jobs("c|110")
    assert info.value.kind == "malformed"


# ------------------------------------------------------------------------------------------
# Reply size bound (ips.max_reply_bytes)
# ------------------------------------------------------------------------------------------


def test_reply_size_bound_defaults_to_64_mib() -> None:
    """Without a setting, replies up to 64 MiB are read."""
    assert settings_for("http://x").max_reply_bytes == 64 * 1024 * 1024


async def test_reply_longer_than_the_bound_is_refused_from_its_length(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """A Content-Length above max_reply_bytes fails the call, naming the size and the key."""
    ips.answer("active_jobs_one.xml")
    ips.body += b" " * 2_000_000
    client = await client_for(ips, session, max_reply_bytes=1_000_000)
    with pytest.raises(IpsReplyError) as info:
        await client.get_active_jobs("c|110")
    assert info.value.kind == "too_large"
    assert f"{len(ips.body):,} bytes" in str(info.value)
    assert "ips.max_reply_bytes (1,000,000)" in str(info.value)
    ips.body = ips.body.rstrip()
    assert len((await client.get_active_jobs("c|110")).jobs) == 1  # the next call is fine


async def test_streamed_reply_stops_being_read_past_the_bound(
    session: aiohttp.ClientSession,
) -> None:
    """A chunked 200 MB reply (no length) is abandoned once the bound is passed."""
    chunk = b"<!-- " + b"x" * 65_000 + b" -->"
    written = 0
    done = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal written
        resp = web.StreamResponse(headers={"Content-Type": "text/xml"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            while written < 200_000_000:
                await resp.write(chunk)
                written += len(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            done.set()
        return resp

    app = web.Application()
    app.router.add_post(SERVICE_PATH, endless)
    async with TestServer(app) as server:
        url = str(server.make_url(SERVICE_PATH))
        client = await IpsClient.create(settings_for(url, max_reply_bytes=1_000_000), session)
        with pytest.raises(IpsReplyError) as info:
            await client.get_active_jobs("c|110")
        await asyncio.wait_for(done.wait(), 60)
    assert info.value.kind == "too_large"
    assert "stopped reading" in str(info.value)
    assert "ips.max_reply_bytes (1,000,000 bytes)" in str(info.value)
    assert written < 100_000_000  # socket buffers hold some; the rest was never sent


async def test_compressed_reply_is_bounded_by_its_decompressed_size(
    session: aiohttp.ClientSession,
) -> None:
    """A small gzip body inflating past the bound is refused while it is read."""
    body = gzip.compress(b"<x>" + b" " * 5_000_000 + b"</x>")

    async def bomb(_: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={"Content-Type": "text/xml", "Content-Encoding": "gzip"}
        )

    app = web.Application()
    app.router.add_post(SERVICE_PATH, bomb)
    async with TestServer(app) as server:
        url = str(server.make_url(SERVICE_PATH))
        client = await IpsClient.create(settings_for(url, max_reply_bytes=1_000_000), session)
        with pytest.raises(IpsReplyError) as info:
            await client.get_active_jobs("c|110")
    assert (info.value.kind, len(body) < 1_000_000) == ("too_large", True)


# ------------------------------------------------------------------------------------------
# WSDL by URL: failures are typed, credentials never shown
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h.example/IpsApi.wsdl", "https://h.example/IpsApi.wsdl"),
        ("https://u:pw@h.example:8443/x?y=1", "https://***@h.example:8443/x?y=1"),
        ("https://user@h.example/x", "https://***@h.example/x"),
        ("https://u:p@ss@h.example/x", "https://***@h.example/x"),  # unescaped @ in the password
        ("http://u:pw@h/x?mail=a@b", "http://***@h/x?mail=a@b"),  # @ after the path is kept
        ("/etc/ips/IpsApi.wsdl", "/etc/ips/IpsApi.wsdl"),
    ],
)
def test_redact_url_hides_user_and_password(url: str, shown: str) -> None:
    """redact_url replaces a URL's user information, and nothing else."""
    assert redact_url(url) == shown
    assert redact_urls(f"cannot load {url}: refused") == f"cannot load {shown}: refused"


async def test_wsdl_url_down_is_a_transport_error_without_its_credentials(
    session: aiohttp.ClientSession,
) -> None:
    """A WSDL URL nobody listens on raises IpsTransportError naming the URL, not its password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://wsdl-user:wsdl-Secret@127.0.0.1:{port}/IpsApi.wsdl"
    with pytest.raises(IpsTransportError) as info:
        await IpsClient.create(settings_for("http://x", wsdl=url), session)
    message = str(info.value)
    assert info.value.kind == "connection"
    assert f"http://***@127.0.0.1:{port}/IpsApi.wsdl" in message
    assert "wsdl-Secret" not in message
    assert "wsdl-user" not in message
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("status", "kind"), [(500, "http_5xx"), (503, "http_5xx"), (404, "http_4xx")]
)
async def test_wsdl_url_http_error_is_a_transport_error(
    ips: FakeIps, session: aiohttp.ClientSession, status: int, kind: str
) -> None:
    """A WSDL URL answering an HTTP error raises IpsTransportError with the status."""
    ips.wsdl_status = status
    url = str(ips.server.make_url("/IpsApi.wsdl")).replace("http://", "http://u:wsdl-Secret@")
    with pytest.raises(IpsTransportError) as info:
        await IpsClient.create(settings_for(ips.url, wsdl=url), session)
    assert (info.value.kind, info.value.status) == (kind, status)
    assert f"HTTP {status}" in str(info.value)
    assert "wsdl-Secret" not in str(info.value)


async def test_wsdl_url_credentials_are_sent_as_basic_auth(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """Credentials written in the WSDL URL authenticate its download (HTTP Basic)."""
    url = str(ips.server.make_url("/IpsApi.wsdl")).replace("http://", "http://u:wsdl-Secret@")
    client = await IpsClient.create(settings_for(ips.url, wsdl=url), session)
    assert client.namespace == NS14
    (req,) = ips.wsdl_requests
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"u:wsdl-Secret").decode()


async def test_wsdl_url_serving_no_wsdl_is_a_wsdl_error_without_credentials(
    ips: FakeIps, session: aiohttp.ClientSession
) -> None:
    """A WSDL URL answering something that is not a WSDL raises IpsError(kind="wsdl")."""
    app = web.Application()

    async def not_wsdl(_: web.Request) -> web.Response:
        return web.Response(body=b"<html>maintenance</html>", content_type="text/html")

    app.router.add_get("/IpsApi.wsdl", not_wsdl)
    async with TestServer(app) as server:
        url = str(server.make_url("/IpsApi.wsdl")).replace("http://", "http://u:wsdl-Secret@")
        with pytest.raises(IpsError) as info:
            await IpsClient.create(settings_for(ips.url, wsdl=url), session)
    assert info.value.kind == "wsdl"
    assert "http://***@" in str(info.value)
    assert "wsdl-Secret" not in str(info.value)


def test_settings_repr_hides_password() -> None:
    """``repr(settings)`` never contains the password."""
    settings = settings_for("http://x")
    assert PASSWORD not in repr(settings)
    assert "poller@example.com" in repr(settings)
    assert settings.wsdl == DEFAULT_WSDL


def test_tls_settings_choose_verification_and_extra_ca(tmp_path: Path) -> None:
    """verify_tls=False disables checks; ca_file gives a context trusting that bundle."""
    import ssl

    import certifi

    assert IpsSettings(user="u", password="p", verify_tls=False, ca_file=None).ssl() is False
    assert IpsSettings(user="u", password="p").ssl() is True
    ctx = IpsSettings(user="u", password="p", ca_file=certifi.where()).ssl()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.cert_store_stats()["x509_ca"] > 0
    with pytest.raises(FileNotFoundError):
        IpsSettings(user="u", password="p", ca_file=str(tmp_path / "missing.pem")).ssl()
