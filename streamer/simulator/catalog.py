"""The kinds of job the simulator submits: type strings, sub-job definitions, tasks, log types.

Sub-job definitions are rendered once per job as XML text without a namespace: they are
inserted below ``getActiveJobsReturn``, whose default namespace qualifies them. Only elements that
exist with the same shape in both 2013-02-15 and 2014-04-03 are emitted, so one text serves both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def esc(text: str) -> str:
    """Escape text for an XML element body (the only context the simulator writes text in)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


EMAIL_SETTINGS = ("All", "Error", "ErrorAndWarning", "JobCompletion", "None")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One kind of task a job runs (``TaskProgress/taskType``)."""

    task_type: str
    #: Verb used in progress messages ("Uploading 3 of 12 files").
    verb: str
    #: Relative share of the job's running time.
    weight: float
    #: Whether the task reports ``taskItemProgressArray`` items while processing.
    with_items: bool = False


@dataclass(frozen=True, slots=True)
class JobKind:
    """One job type with its sub-job element, tasks and job log vocabulary."""

    type: str
    element: str | None
    weight: float
    name_prefix: str
    #: ``Begin<log_kind>`` / ``End<log_kind>`` job log types.
    log_kind: str
    tasks: tuple[TaskSpec, ...]
    file_ext: str = "jpg"
    asset_type: str = "Image"
    #: Whether files are transferred (upload jobs count transfers in their log).
    transfers: bool = False
    documented: bool = True


_UPLOAD = TaskSpec("com.scene7.upload.UploadAsyncTaskMonitor", "Uploading", 3.0, True)
_AUTOSET = TaskSpec("com.scene7.autoset.AutoSetAsyncTaskMonitor", "Generating sets for", 1.0)
_OPTIMIZE = TaskSpec("com.scene7.optimize.OptimizeAsyncTaskMonitor", "Optimizing", 2.0)
_PUBLISH = TaskSpec("com.scene7.publish.PublishAsyncTaskMonitor", "Publishing", 3.0)
_MANIFEST = TaskSpec("com.scene7.publish.ManifestAsyncTaskMonitor", "Writing manifests for", 1.0)
_VIDEO = TaskSpec("com.scene7.video.VideoEncodeAsyncTaskMonitor", "Encoding", 4.0, True)

KINDS: tuple[JobKind, ...] = (
    JobKind(
        "ImageServingPublish",
        "imageServingPublishJob",
        3,
        "ISPublish",
        "ImageServingPublish",
        (_PUBLISH,),
    ),
    JobKind(
        "UrlUpload", "uploadUrlsJob", 3, "UrlUpload", "Upload", (_UPLOAD, _AUTOSET), transfers=True
    ),
    JobKind(
        "UploadFromServerDirectory",
        "uploadDirectoryJob",
        2,
        "DirUpload",
        "Upload",
        (_UPLOAD,),
        transfers=True,
    ),
    JobKind(
        "VideoPublish",
        "videoPublishJob",
        1,
        "VideoPublish",
        "VideoPublish",
        (_VIDEO,),
        file_ext="mp4",
        asset_type="Video",
    ),
    JobKind(
        "ImageRenderingPublish",
        "imageRenderingPublishJob",
        1,
        "IRPublish",
        "ImageRenderingPublish",
        (_PUBLISH,),
    ),
    JobKind(
        "ServerDirectoryPublish",
        "serverDirectoryPublishJob",
        1,
        "DirPublish",
        "ServerDirectoryPublish",
        (_PUBLISH, _MANIFEST),
    ),
    JobKind("ImageOptimization", "optimizeImagesJob", 1, "Optimize", "Reoptimize", (_OPTIMIZE,)),
)

#: Type strings outside the documented Job Types list (IPS has more job kinds than it documents).
UNDOCUMENTED_KINDS: tuple[JobKind, ...] = (
    JobKind(
        "ReprocessAssets",
        "reprocessAssetsJob",
        1,
        "Reprocess",
        "Reprocess",
        (_OPTIMIZE,),
        documented=False,
    ),
    JobKind("AssetExport", "exportJob", 1, "Export", "Export", (_PUBLISH,), documented=False),
    JobKind("CustomMaintenance", None, 1, "Maintenance", "Maintenance", (), documented=False),
)

_WORDS = (
    "spring_catalog",
    "homepage",
    "Sale & Clearance",
    "brand-refresh",
    "lookbook",
    "nightly",
    "swatches",
    "holiday <2024>",
    "outlet",
    "360-spins",
    "banners",
    "pdp",
)


def pick_kind(rng: random.Random, unknown_probability: float) -> JobKind:
    """Draw a job kind: mostly documented ones, sometimes an undocumented type string."""
    pool = UNDOCUMENTED_KINDS if rng.random() < unknown_probability else KINDS
    return rng.choices(pool, weights=[k.weight for k in pool])[0]


def original_name(kind: JobKind, rng: random.Random) -> str:
    """A ``submitJob`` name; names repeat across jobs, as recurring jobs' names do."""
    return f"{kind.name_prefix}_{rng.choice(_WORDS)}"


def file_name(kind: JobKind, index: int) -> str:
    """Name of the ``index``-th file of a job."""
    return f"asset_{index + 1:04d}.{kind.file_ext}"


def _el(name: str, value: object) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else esc(str(value))
    return f"<{name}>{text}</{name}>"


def _handles(name: str, company: str, rng: random.Random, n: int) -> str:
    items = "".join(_el("items", f"a|{company}|{rng.randrange(10**6, 10**7)}") for _ in range(n))
    return f"<{name}>{items}</{name}>"


def sub_job_xml(kind: JobKind, company: str, files: int, rng: random.Random) -> str:
    """The sub-job definition element of a job of ``kind`` (``""`` when it has none)."""
    if kind.element is None:
        return ""
    email = _el("emailSetting", rng.choice(EMAIL_SETTINGS))
    folder = company.removeprefix("c|")
    body: str
    if kind.element == "imageServingPublishJob":
        body = _el("publishType", rng.choice(("Full", "Incremental", "FullWithSearch"))) + email
    elif kind.element == "uploadUrlsJob":
        urls = "".join(
            "<items>"
            + _el("sourceUrl", f"https://assets.example.com/in/{file_name(kind, i)}")
            + _el("destPath", f"{folder}/incoming/{file_name(kind, i)}")
            + "</items>"
            for i in range(min(files, 1))
        )
        body = (
            f"<urlArray>{urls}</urlArray>"
            + _el("numUrls", files)
            + _el("overwrite", True)
            + _el("readyForPublish", True)
            + _el("createMask", False)
            + email
        )
        if rng.random() < 0.3:
            # A chained publish: nested sub-job definition, as uploads often request.
            body += (
                "<postImageServingPublishJob>"
                + _el("publishType", "Incremental")
                + _el("emailSetting", "None")
                + "</postImageServingPublishJob>"
            )
    elif kind.element == "uploadDirectoryJob":
        body = (
            _el("destFolder", f"{folder}/incoming/")
            + _el("serverDir", "/incoming/batch")
            + _el("overwrite", True)
            + _el("readyForPublish", rng.random() < 0.5)
            + _el("includeSubfolders", rng.random() < 0.5)
            + _el("createMask", False)
            + _el("processMetadataFiles", False)
            + email
        )
    elif kind.element == "reprocessAssetsJob":
        body = _handles("assetHandleArray", folder, rng, 2) + _el("createMask", False) + email
    elif kind.element == "exportJob":
        body = _handles("assetHandleArray", folder, rng, 2) + _el("fmt", "orig") + email
    else:  # the publish kinds and optimizeImagesJob carry only emailSetting (and optionals)
        body = email
    return f"<{kind.element}>{body}</{kind.element}>"
