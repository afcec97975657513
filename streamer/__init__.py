"""ips-job-streamer: Adobe Dynamic Media Classic (Scene7) IPS job changes as Kafka events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ips-job-streamer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
