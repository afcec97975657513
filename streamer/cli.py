"""Command line: ``streamer run | check | simulate | tail | demo | kafka | schemas``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from streamer.config import ConfigError, Settings, load_config
from streamer.encode import TopicNames
from streamer.logs import configure, secrets_of

EXIT_CONFIG = 2


def _load(path: Path | None) -> Settings:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="ips-job-streamer")
def main() -> None:
    """Stream Adobe Dynamic Media Classic (Scene7) IPS job changes into Kafka."""


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file."
)
@click.option("--max-cycles", type=int, default=None, help="Stop after N cycles per company.")
def run(config_path: Path | None, max_cycles: int | None) -> None:
    """Run the streamer daemon until SIGTERM/SIGINT.

    Exit codes: 0 drained cleanly, 1 unexpected error, 2 bad configuration, 3 fenced by another
    instance with the same transactional id, 4 drain timed out, 130 forced by a second signal.
    """
    from streamer.service import Service, loop_factory

    settings = _load(config_path)
    configure(settings.log.level, settings.log.format, secrets_of(settings))

    async def _main() -> int:
        service = Service(settings, max_cycles=max_cycles)
        service.install_signal_handlers()
        return await service.run()

    with asyncio.Runner(loop_factory=loop_factory(settings.runtime.uvloop)) as runner:
        code = runner.run(_main())
    sys.exit(code)


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file."
)
def check(config_path: Path | None) -> None:
    """Validate the config, call getActiveJobs once per company and check Kafka."""
    from streamer.check import run_check

    settings = _load(config_path)
    configure("warning", "console", secrets_of(settings))
    ok = asyncio.run(run_check(settings, echo=click.echo))
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8089, show_default=True, type=int)
@click.option(
    "--company",
    "companies",
    multiple=True,
    help="Company handle to simulate (repeatable). Default: c|1001 c|1002 c|1003.",
)
@click.option("--companies", "n_companies", type=int, help="Simulate N companies c|1001...")
@click.option("--jobs-per-company", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--speedup", type=float, default=1.0, show_default=True)
@click.option("--max-jobs", type=int, default=None, help="Stop submitting after N jobs.")
@click.option("--ground-truth", type=click.Path(path_type=Path), default=None)
@click.option("--user", default="demo@example.com", show_default=True)
@click.option("--password", default="demo-password", show_default=True)
@click.option("--stall-probability", type=float, default=None)
@click.option("--fail-probability", type=float, default=None, help="Share of jobs that fail.")
@click.option(
    "--short-job-share",
    type=float,
    default=None,
    help="Share of jobs that live only --short-job-duration seconds (may end between polls).",
)
@click.option(
    "--short-job-duration",
    type=(float, float),
    default=None,
    help="Lifetime range of short jobs, simulated seconds (LOW HIGH). Default: 0.2 1.5.",
)
@click.option(
    "--log-delay", type=float, default=None, help="Seconds before a finished job's log appears."
)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Take the settings from the [simulator] table of this TOML file (the demo config's "
    "workload and scripted scenario); options given on the command line win.",
)
def simulate(
    host: str,
    port: int,
    companies: tuple[str, ...],
    n_companies: int | None,
    jobs_per_company: int,
    seed: int,
    speedup: float,
    max_jobs: int | None,
    ground_truth: Path | None,
    user: str,
    password: str,
    stall_probability: float | None,
    fail_probability: float | None,
    short_job_share: float | None,
    short_job_duration: tuple[float, float] | None,
    log_delay: float | None,
    log_level: str,
    config_path: Path | None,
) -> None:
    """Serve a simulated IPS (real SOAP over HTTP) with a seeded job lifecycle."""
    import tomllib

    from click.core import ParameterSource

    from streamer.simulator import SimulatorConfig, serve

    configure(log_level, "auto")
    table: dict[str, Any] = {}
    if config_path is not None:
        try:
            with config_path.open("rb") as fh:
                table = tomllib.load(fh).get("simulator", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.UsageError(f"--config {config_path}: {exc}") from None
    ctx = click.get_current_context()
    if n_companies:
        companies = tuple(f"c|{1001 + i}" for i in range(n_companies))
    kw: dict[str, Any] = {}
    # The table's values stand unless an option was given on the command line.
    for names, key, value in (
        (("companies", "n_companies"), "companies", companies or ("c|1001", "c|1002", "c|1003")),
        (("jobs_per_company",), "jobs_per_company", jobs_per_company),
        (("seed",), "seed", seed),
        (("speedup",), "speedup", speedup),
    ):
        given = (ctx.get_parameter_source(n) is not ParameterSource.DEFAULT for n in names)
        if any(given) or key not in table:
            kw[key] = value
    if max_jobs is not None:
        kw["max_jobs_total"] = max_jobs
    if stall_probability is not None:
        kw["stall_probability"] = stall_probability
    if fail_probability is not None:
        kw["fail_probability"] = fail_probability
    if short_job_share is not None:
        kw["short_job_share"] = short_job_share
    if short_job_duration is not None:
        kw["short_job_duration_s"] = short_job_duration
    if log_delay is not None:
        kw["log_delay_s"] = log_delay
    try:
        config = SimulatorConfig.from_table(
            table, users={user: password}, ground_truth_path=ground_truth, **kw
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def ready(url: str) -> None:
        click.echo(f"IPS simulator listening on {url}", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, host, port, ready=ready))


@main.command("tail")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Read the Kafka settings (bootstrap servers, TLS, SASL, topic prefix) from the "
    "daemon's TOML configuration and STREAMER_* environment.",
)
@click.option(
    "--bootstrap", default=None, help="Kafka bootstrap servers.  [default: 127.0.0.1:9092]"
)
@click.option("--topic-prefix", default=None, help="Topic prefix.  [default: ips]")
@click.option("--company", "companies", multiple=True, help="Show only this company (repeatable).")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Show only this job type (ImageServingPublish, ...) or, with a dot, this event type "
    "(job.completed, streamer.notification, ...). Repeatable.",
)
@click.option("--lines", is_flag=True, help="One line per event instead of the live view.")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest retained record.")
@click.option("--heartbeats", is_flag=True, help="Also print heartbeat records (line view).")
@click.option("--max-records", type=int, default=None, help="Stop after showing N records.")
def tail_cmd(
    config_path: Path | None,
    bootstrap: str | None,
    topic_prefix: str | None,
    companies: tuple[str, ...],
    types: tuple[str, ...],
    lines: bool,
    from_beginning: bool,
    heartbeats: bool,
    max_records: int | None,
) -> None:
    """Show the job topics live (read_committed): a live view on a terminal, lines otherwise.

    Waits (saying why, once) while the broker is unreachable or the topics do not exist yet.
    """
    from streamer.tail import run_tail
    from streamer.tail_state import Filters

    client_kwargs: dict[str, Any] = {"bootstrap_servers": "127.0.0.1:9092"}
    prefix = "ips"
    if config_path is not None:
        kafka = _load(config_path).kafka
        client_kwargs = dict(kafka.client_kwargs())
        prefix = kafka.topic_prefix
    if bootstrap is not None:
        client_kwargs["bootstrap_servers"] = bootstrap
    run_tail(
        client_kwargs,
        TopicNames.with_prefix(topic_prefix or prefix),
        lines=lines,
        from_beginning=from_beginning,
        heartbeats=heartbeats,
        max_records=max_records,
        filters=Filters.of(companies, types),
    )


@main.command()
@click.option("--lines", is_flag=True, help="Print one line per event instead of the table.")
@click.option(
    "--speedup",
    type=float,
    default=1.0,
    show_default=True,
    help="Run the simulated IPS this many times faster than the wall clock (its times then run "
    "ahead of the streamer's; the demo says so on screen).",
)
def demo(lines: bool, speedup: float) -> None:
    """Broker + IPS simulator + streamer + live view, all local; Ctrl-C stops everything."""
    from streamer.demo import run_demo

    sys.exit(run_demo(lines=lines, speedup=speedup))


@main.command("kafka")
@click.argument("action", type=click.Choice(["fetch", "start", "stop", "status"]))
@click.option("--port", type=int, default=9092, show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Broker storage and pid file (default: var/kafka of $STREAMER_HOME or the checkout).",
)
def kafka_cmd(action: str, port: int, state_dir: Path | None) -> None:
    """Manage the local single-node Kafka broker (jars from Maven Central, cached)."""
    # A dev tool: imported here so that ``streamer run`` never loads it.
    from streamer import localkafka

    state = state_dir or localkafka.DEFAULT_STATE
    sys.exit(localkafka.main([action, "--port", str(port), "--state-dir", str(state)]))


@main.group("schemas")
def schemas_cmd() -> None:
    """The JSON Schemas of the event contract (every version the daemon serves)."""


@schemas_cmd.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write every packaged schema file into DIRECTORY (created if missing), to publish them
    elsewhere: serve DIRECTORY at some URL and set events.schema_base_url to it."""
    from streamer.encode import schema_files, schema_text

    directory.mkdir(parents=True, exist_ok=True)
    for name in schema_files():
        text = schema_text(name)
        assert text is not None  # listed names always have a text
        (directory / name).write_text(text, encoding="utf-8")
    click.echo(f"wrote {len(schema_files())} schema files to {directory}")


if __name__ == "__main__":
    main()
