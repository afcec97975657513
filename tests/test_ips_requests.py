"""Request envelopes: the cached, filled-in copies are byte-for-byte what zeep serialises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.ips import IpsClient, IpsSettings
from streamer.ips.client import DEFAULT_WSDL, _load_binding

BINDING = _load_binding(DEFAULT_WSDL, DEFAULT_WSDL)


def client(**overrides: Any) -> IpsClient:
    """A client on the shipped WSDL (no session: only requests are built)."""
    values: dict[str, Any] = {"user": "api@example.com", "password": "p&ss<w>rd", **overrides}
    return IpsClient(IpsSettings(endpoint="http://ips.invalid/x", **values), None, BINDING)  # type: ignore[arg-type]


def zeep_built(c: IpsClient, operation: str, **params: Any) -> bytes:
    """The envelope as zeep serialises it, without any caching."""
    return c._serialize(operation, {k: v for k, v in params.items() if v is not None})


ODD = ["c|1001", "", "a&b<c>d\"e'f", "tab\tcr\rlf\n", "ümlaut 漢字 🎉", "]]>", "  spaces  "]


@pytest.mark.parametrize("handle", ODD)
@pytest.mark.parametrize("auth", ["header", "basic", "both"])
def test_filled_envelopes_equal_zeep(handle: str, auth: str) -> None:
    """Every operation, with odd handles and every auth mode, gives zeep's exact bytes."""
    c = client(auth=auth, locale="de-DE")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("getActiveJobs", {"companyHandle": handle}),
        ("getActiveJobs", {"companyHandle": handle, "includeWaitingJobs": True}),
        ("getJobLogDetails", {"companyHandle": handle, "jobHandle": handle + "|j"}),
        (
            "getJobLogs",
            {
                "companyHandle": handle,
                "numRows": 10,
                "startDate": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                "sortDirection": "Descending",
                "userHandle": None,
            },
        ),
    ]
    for _ in range(2):  # the first call builds the template, the second fills it
        for operation, params in cases:
            assert c.build_request(operation, **params) == zeep_built(c, operation, **params)


@settings(max_examples=200, deadline=None)
@given(
    company=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=20),
    job=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=20),
)
def test_any_handles_fill_in_as_zeep_writes_them(company: str, job: str) -> None:
    """Any printable handles are escaped into the envelope exactly as zeep (lxml) does."""
    c = _SHARED
    params = {"companyHandle": company, "jobHandle": job}
    assert c.build_request("getJobLogDetails", **params) == zeep_built(
        c, "getJobLogDetails", **params
    )


_SHARED = client()


def test_text_xml_cannot_carry_is_refused_like_zeep() -> None:
    """A control character XML cannot carry raises ValueError, as zeep's serialisation does."""
    c = client()
    c.build_request("getActiveJobs", companyHandle="c|1")
    with pytest.raises(ValueError, match="XML compatible"):
        zeep_built(c, "getActiveJobs", companyHandle="bad\x00")
    with pytest.raises(ValueError, match="XML compatible"):
        c.build_request("getActiveJobs", companyHandle="bad\x00")
