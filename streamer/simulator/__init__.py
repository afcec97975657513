"""A fake IPS (Scene7 / Dynamic Media Classic) server for demos, end-to-end and chaos tests.

It speaks SOAP 1.1 over HTTP like the real ``IpsApiService`` (``getActiveJobs``,
``getJobLogs``, ``getJobLogDetails``), runs a deterministic job lifecycle model per company,
injects faults on demand and writes a JSON Lines ground truth of what happened and what each
poll could see.

Entry points: :func:`build_app`, :func:`serve`, :class:`SimulatorConfig`, :func:`read_ground_truth`.
"""

from streamer.simulator.config import DEFAULT_PASSWORD, DEFAULT_USER, SimulatorConfig
from streamer.simulator.faults import MODES as FAULT_MODES
from streamer.simulator.faults import FaultRule
from streamer.simulator.groundtruth import read_ground_truth
from streamer.simulator.server import SERVICE_PATH, build_app, serve
from streamer.simulator.state import SIMULATOR, Simulator

__all__ = [
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "FAULT_MODES",
    "SERVICE_PATH",
    "SIMULATOR",
    "FaultRule",
    "Simulator",
    "SimulatorConfig",
    "build_app",
    "read_ground_truth",
    "serve",
]
