"""The tap-wootric command line: arguments, files, exit codes (the console script starts in __init__)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, List, Mapping, NoReturn, Optional

from singer.catalog import Catalog

from tap_wootric.about import render as render_about
from tap_wootric.api.client import WootricClient
from tap_wootric.cancel import Cancellation, Cancelled
from tap_wootric.catalog.discover import discover
from tap_wootric.catalog.file import check_catalog_shape
from tap_wootric.config import load_config
from tap_wootric.errors import InputFileError, TapWootricError
from tap_wootric.output import write_lines
from tap_wootric.settings import SETTINGS
from tap_wootric.settings_check import warn_unknown_settings
from tap_wootric.state import prepare_state
from tap_wootric.sync import sync
from tap_wootric.version import VERSION

LOGGER = logging.getLogger("tap_wootric")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tap-wootric", description="Singer tap for Wootric (InMoment)")
    parser.add_argument("-c", "--config", help="Config file (required except with --about)")
    parser.add_argument("-s", "--state", help="State file")
    parser.add_argument("--catalog", help="Catalog file")
    parser.add_argument("-p", "--properties", help="Catalog file (legacy name of --catalog)")
    parser.add_argument("-d", "--discover", action="store_true", help="Print a catalog and exit")
    parser.add_argument("--dev", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="Log at DEBUG level and show tracebacks of errors")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="Log level (default INFO, or the LOG_LEVEL environment variable)",
    )
    parser.add_argument("--about", action="store_true", help="Print the tap's name, version, capabilities and settings")
    parser.add_argument("--format", choices=["json", "markdown"], help="Output format of --about (default json)")
    parser.add_argument("--version", action="version", version=f"tap-wootric {VERSION}")
    return parser


def parse_arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.format and not args.about:
        parser.error("--format applies only to --about")
    if not args.config and not args.about:
        parser.error("the following arguments are required: -c/--config")
    return args


def settings_from_environment(raw: Any, environ: Mapping[str, str]) -> Any:
    """Config file values, with TAP_WOOTRIC_<SETTING> environment variables filling any setting the file
    leaves out (how Meltano and container schedulers pass secrets)."""
    if not isinstance(raw, dict):
        return raw
    merged = dict(raw)
    for setting in SETTINGS:
        value = environ.get(setting.env_var)
        if value not in (None, "") and merged.get(setting.name) in (None, ""):
            merged[setting.name] = value
    return merged


def load_json_file(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputFileError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read {what} file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{what} file {path} is not valid JSON: {exc}") from None


def load_catalog(path: str) -> Catalog:
    raw = load_json_file(path, "catalog")
    if not isinstance(raw, dict) or not isinstance(raw.get("streams"), list):
        raise InputFileError(f"catalog file {path} must hold an object with a 'streams' list")
    check_catalog_shape(raw, f"catalog file {path}")
    try:
        return Catalog.from_dict(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputFileError(f"catalog file {path} has an entry of the wrong shape ({exc})") from None


def log_level(args: argparse.Namespace) -> int:
    if args.debug:
        return logging.DEBUG
    level = logging.getLevelName(args.log_level or os.environ.get("LOG_LEVEL", "").upper() or "INFO")
    return level if isinstance(level, int) else logging.INFO


def set_log_level(level: int) -> None:
    # singer-python re-reads its logging.conf (root logger at INFO) whenever it creates a metric,
    # so the level is set on the tap's own loggers, which keep it; their lines reach the root's
    # stderr handler all the same.
    logging.getLogger().setLevel(level)
    logging.getLogger("tap_wootric").setLevel(level)
    if level > logging.INFO:
        # singer-python's metric counters reset the root logger to INFO, and their METRIC lines go
        # through it; disabling below the level holds for every logger, whatever resets them.
        logging.disable(level - 1)
    if level <= logging.DEBUG:
        logging.getLogger("urllib3").setLevel(level)


def time_scale() -> float:
    """TAP_WOOTRIC_TIME_SCALE shrinks the tap's own retry waits; the fault tests use it."""
    try:
        return max(0.0, float(os.environ.get("TAP_WOOTRIC_TIME_SCALE", "1")))
    except ValueError:
        return 1.0


def run(args: argparse.Namespace, cancellation: Cancellation) -> None:
    raw_config = load_json_file(args.config, "config")
    warn_unknown_settings(raw_config, (setting.name for setting in SETTINGS))
    config = load_config(settings_from_environment(raw_config, os.environ))
    client = WootricClient(config, time_scale=time_scale(), cancellation=cancellation)

    if args.discover:
        # The catalog needs no API call, but checking the credentials now means a bad
        # config fails when it is set up, not in the middle of the night.
        client.authenticate()
        write_lines(json.dumps(discover().to_dict(), indent=2) + "\n")
        return

    catalog_path = args.catalog or args.properties
    catalog = load_catalog(catalog_path) if catalog_path else discover()
    state = prepare_state(load_json_file(args.state, "state") if args.state else {}, f"state file {args.state}")
    client.authenticate()
    sync(client, config, catalog, state)


def discard_stdout() -> None:
    """Point stdout at the null device: output a dead target could not take would otherwise fail once
    more when Python flushes stdout at exit, with an "Exception ignored ... BrokenPipeError" message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind stdout: nothing will fail at exit either
        pass


def stopped(exc: Cancelled) -> NoReturn:
    LOGGER.critical("Stopped by %s; the last STATE written is the resume point", exc.name)
    try:
        sys.stdout.flush()  # every message was flushed whole already; this is for certainty
    except OSError:
        discard_stdout()
    sys.exit(exc.exit_code)


def main(argv: Optional[List[str]] = None, cancellation: Optional[Cancellation] = None) -> None:
    """Run the command; `cancellation` is the entry point's, with its signal handlers installed."""
    if cancellation is None:
        cancellation = Cancellation()
        cancellation.install()
    level = logging.INFO
    try:
        cancellation.check()  # a signal that came during the imports
        args = parse_arguments(argv)
        if args.about:
            write_lines(render_about(args.format) + "\n")
            return
        level = log_level(args)
        set_log_level(level)
        run(args, cancellation)
        # A signal during the last writes: the sync did finish, but the caller asked it to stop and
        # is told so, as at any other moment.
        cancellation.check()
    except Cancelled as exc:
        stopped(exc)
    except TapWootricError as exc:
        LOGGER.critical("%s", exc, exc_info=level <= logging.DEBUG)
        sys.exit(1)
    except BrokenPipeError:
        discard_stdout()
        if cancellation.signum is not None:
            # Ctrl-C reaches the whole pipeline, so the target may be gone before the tap's last write:
            # the tap was still stopped by the signal.
            stopped(Cancelled(cancellation.signum))
        # The target went away; whatever it kept, the next run resumes from its state.
        LOGGER.critical("The target stopped reading the tap's output (broken pipe); the state it saved last "
                        "is the resume point")
        sys.exit(1)
    except Exception:
        LOGGER.critical("Unexpected error (a bug in tap-wootric; please report it)", exc_info=True)
        sys.exit(1)
