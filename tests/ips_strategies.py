"""Hypothesis strategies for IPS replies: schema-valid ``getActiveJobs`` documents and the model
values they must decode to.

Sub-job definitions are generated from the schema in the shipped WSDL itself (walking each
complexType's sequence), so every generated reply is valid for zeep's strict mode as well: the
fast decoder and zeep's mapping can be compared on the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st
from lxml import etree

from streamer.ips.client import DEFAULT_WSDL
from streamer.model import (
    SUB_JOB_ELEMENTS,
    JobSnapshot,
    JobStatus,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    XmlTree,
)

XS = "http://www.w3.org/2001/XMLSchema"
NS14 = "http://www.scene7.com/IpsApi/xsd/2014-04-03"
NS13 = "http://www.scene7.com/IpsApi/xsd/2013-02-15"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass(frozen=True)
class Field:
    """One element of a complexType sequence."""

    name: str
    type: str  # "xsd:string", ... or a complexType name
    min: int
    unbounded: bool


def _schema_types() -> dict[str, tuple[Field, ...]]:
    root = etree.parse(DEFAULT_WSDL).getroot()
    types: dict[str, tuple[Field, ...]] = {}
    for ct in root.iter(f"{{{XS}}}complexType"):
        name = ct.get("name")
        if name is None:
            continue
        types[name] = tuple(
            Field(
                name=str(el.get("name")),
                type=str(el.get("type")).removeprefix("types:"),
                min=int(el.get("minOccurs", "1")),
                unbounded=el.get("maxOccurs") == "unbounded",
            )
            for el in ct.iter(f"{{{XS}}}element")
        )
    return types


SCHEMA = _schema_types()
ACTIVE_JOB_FIELDS = {f.name: f.type for f in SCHEMA["ActiveJob"]}

#: XML 1.0 text: no control characters (\r would be normalised by parsers), no surrogates or
#: private use, no non-characters.
texts = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Co"), exclude_characters="\ufffe\uffff\ufeff"),
    max_size=12,
)
#: Leaf text for sub-job trees: non-empty (whitespace-only ones are dropped from the tree).
leaf_texts = texts.filter(bool)
ints = st.integers(-(2**31), 2**31 - 1)
doubles = st.floats(allow_nan=False, allow_infinity=False)
#: Task progress as (xsd:double text, decoded value): non-finite values decode to 0.0.
progress_values = st.one_of(
    doubles.map(lambda d: (repr(d), d)),
    st.sampled_from([("NaN", 0.0), ("INF", 0.0), ("-INF", 0.0)]),
)
OFFSETS = (None, UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45)))


@st.composite
def datetimes(draw: st.DrawFn) -> tuple[str, datetime]:
    """An xsd:dateTime lexical form and its expected aware value (no offset means UTC)."""
    naive = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
    tz = draw(st.sampled_from(OFFSETS))
    value = naive.replace(tzinfo=tz)
    return value.isoformat(), naive.replace(tzinfo=tz or UTC)


# A generated element: (name, text or children). Serialised as is; ``expected`` derives the tree.
Node = tuple[str, "str | list[Node]"]


def _leaf(draw: st.DrawFn, xsd_type: str) -> str:
    if xsd_type == "xsd:boolean":
        return "true" if draw(st.booleans()) else "false"
    if xsd_type == "xsd:int":
        return str(draw(ints))
    if xsd_type == "xsd:long":
        return str(draw(st.integers(-(2**63), 2**63 - 1)))
    if xsd_type == "xsd:double":
        return repr(draw(doubles))
    return draw(leaf_texts)


def _nodes(draw: st.DrawFn, type_name: str, depth: int) -> list[Node]:
    out: list[Node] = []
    for f in SCHEMA[type_name]:
        count = 1
        if f.unbounded:
            count = draw(st.integers(0, 3))
        elif f.min == 0:
            count = draw(st.integers(0, 1)) if depth < 3 else 0
        for _ in range(count):
            if f.type.startswith("xsd:"):
                out.append((f.name, _leaf(draw, f.type)))
            else:
                out.append((f.name, _nodes(draw, f.type, depth + 1)))
    return out


def expected_tree(nodes: list[Node]) -> XmlTree:
    """The XmlTree both decoders produce for generated nodes.

    An element without children or with whitespace-only text vanishes (zeep cannot tell it from
    an absent one); one whose children all vanish stays, as an empty tree.
    """
    out: list[tuple[str, str | XmlTree]] = []
    for name, value in nodes:
        if isinstance(value, str):
            if not value.isspace():
                out.append((name, value))
        elif value:
            out.append((name, expected_tree(value)))
    return tuple(out)


@st.composite
def sub_jobs(draw: st.DrawFn) -> tuple[str, list[Node]]:
    """A schema-valid sub-job element, chosen among the 14, with random optional content."""
    element = draw(st.sampled_from(SUB_JOB_ELEMENTS))
    return element, _nodes(draw, ACTIVE_JOB_FIELDS[element], 0)


@dataclass(frozen=True)
class GeneratedJob:
    """Nodes to serialise for one ActiveJob and the JobSnapshot the decoder must return."""

    nodes: list[Node]
    expected: JobSnapshot


@st.composite
def _tasks(draw: st.DrawFn) -> tuple[list[Node], TaskProgress]:
    items_nodes: list[Node] = []
    items: list[TaskItemProgress] = []
    for _ in range(draw(st.integers(0, 2))):
        name, msg, (progress_text, progress) = draw(texts), draw(texts), draw(progress_values)
        lex, when = draw(datetimes())
        items_nodes.append(
            (
                "items",
                [
                    ("itemName", name),
                    ("progress", progress_text),
                    ("progressMessage", msg),
                    ("lastProgressUpdate", lex),
                ],
            )
        )
        items.append(TaskItemProgress(name, progress, msg, when))
    t_type, t_state, t_msg = draw(texts), draw(texts), draw(texts)
    processed, processing, pending = draw(ints), draw(ints), draw(ints)
    progress_text, progress = draw(progress_values)
    lex, when = draw(datetimes())
    node: list[Node] = [
        ("taskType", t_type),
        ("taskState", t_state),
        ("numProcessed", str(processed)),
        ("numProcessing", str(processing)),
        ("numPending", str(pending)),
        ("progress", progress_text),
        ("progressMessage", t_msg),
        ("lastProgressUpdate", lex),
        ("taskItemProgressArray", items_nodes),
    ]
    task = TaskProgress(
        t_type, t_state, processed, processing, pending, progress, t_msg, when, tuple(items)
    )
    return node, task


@st.composite
def active_jobs(draw: st.DrawFn, *, with_trigger_time: bool = True) -> GeneratedJob:
    """One schema-valid ActiveJob (optional elements randomly absent, empty or set)."""
    s = {
        k: draw(texts)
        for k in (
            "companyHandle",
            "jobHandle",
            "name",
            "originalName",
            "type",
            "state",
            "submitUserEmail",
            "serverName",
            "progressMessage",
        )
    }
    optional: dict[str, str | None] = {
        k: draw(st.none() | texts) for k in ("locale", "description")
    }
    start_lex, start = draw(datetimes())
    trig_lex, trig = draw(datetimes())
    last_lex, last = draw(datetimes())
    total, progress = draw(ints), draw(ints)
    tasks = draw(st.lists(_tasks(), max_size=2))
    sub = draw(st.none() | sub_jobs())
    nodes: list[Node] = [
        (k, s[k])
        for k in (
            "companyHandle",
            "jobHandle",
            "name",
            "originalName",
            "type",
            "state",
            "submitUserEmail",
        )
    ]
    nodes += [(k, v) for k, v in optional.items() if v is not None]
    nodes += [("serverName", s["serverName"]), ("startDate", start_lex)]
    if with_trigger_time:
        nodes.append(("triggerTime", trig_lex))
    nodes += [
        ("totalSize", str(total)),
        ("progress", str(progress)),
        ("progressMessage", s["progressMessage"]),
        ("lastProgressUpdate", last_lex),
        ("taskProgressArray", [("items", n) for n, _ in tasks]),
    ]
    if sub is not None:
        nodes.append(sub)
    expected = JobSnapshot(
        company_handle=s["companyHandle"],
        job_handle=s["jobHandle"],
        name=s["name"],
        original_name=s["originalName"],
        type=s["type"],
        submit_user_email=s["submitUserEmail"],
        locale=optional["locale"] or None,
        description=optional["description"] or None,
        server_name=s["serverName"],
        start_date=start,
        trigger_time=trig if with_trigger_time else None,
        status=JobStatus(
            s["state"], progress, s["progressMessage"], last, total, tuple(t for _, t in tasks)
        ),
        sub_job=SubJob(sub[0], expected_tree(sub[1])) if sub is not None else None,
    )
    return GeneratedJob(nodes, expected)


def _append(parent: etree._Element, ns: str, nodes: list[Node]) -> None:
    for name, value in nodes:
        child = etree.SubElement(parent, f"{{{ns}}}{name}")
        if isinstance(value, str):
            if value:
                child.text = value
        else:
            _append(child, ns, value)


def active_jobs_reply(jobs: list[GeneratedJob], namespace: str = NS14) -> bytes:
    """A SOAP 1.1 ``getActiveJobs`` reply holding ``jobs`` in schema order."""
    env = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soapenv": SOAP11})
    body = etree.SubElement(env, f"{{{SOAP11}}}Body")
    ret = etree.SubElement(body, f"{{{namespace}}}getActiveJobsReturn", nsmap={None: namespace})
    array = etree.SubElement(ret, f"{{{namespace}}}jobArray")
    _append(array, namespace, [("items", job.nodes) for job in jobs])
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def as_zeep_sees(job: JobSnapshot) -> JobSnapshot:
    """What zeep's mapping can report: an empty sub-job element is indistinguishable from none."""
    if job.sub_job is not None and not job.sub_job.fields:
        return replace(job, sub_job=None)
    return job
