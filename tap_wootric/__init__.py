"""tap-wootric: a Singer tap for Wootric (InMoment) survey data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, List, Optional

import singer
from singer.catalog import Catalog

from tap_wootric.client import WootricClient
from tap_wootric.config import load_config
from tap_wootric.discover import discover
from tap_wootric.errors import InputFileError, TapWootricError
from tap_wootric.state import prepare_state
from tap_wootric.sync import sync
from tap_wootric.version import VERSION

LOGGER = singer.get_logger()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tap-wootric", description="Singer tap for Wootric (InMoment)")
    parser.add_argument("-c", "--config", required=True, help="Config file")
    parser.add_argument("-s", "--state", help="State file")
    parser.add_argument("--catalog", help="Catalog file")
    parser.add_argument("-p", "--properties", help="Catalog file (legacy name of --catalog)")
    parser.add_argument("-d", "--discover", action="store_true", help="Print a catalog and exit")
    parser.add_argument("--dev", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"tap-wootric {VERSION}")
    return parser


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
    try:
        return Catalog.from_dict(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputFileError(f"catalog file {path} has an entry of the wrong shape ({exc})") from None


def run(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    config = load_config(load_json_file(args.config, "config"))
    client = WootricClient(config)

    if args.discover:
        # The catalog needs no API call, but checking the credentials now means a bad
        # config fails when it is set up, not in the middle of the night.
        client.authenticate()
        json.dump(discover().to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
        return

    catalog_path = args.catalog or args.properties
    catalog = load_catalog(catalog_path) if catalog_path else discover()
    state = prepare_state(load_json_file(args.state, "state") if args.state else {})
    client.authenticate()
    sync(client, config, catalog, state)


def main() -> None:
    try:
        run()
    except TapWootricError as exc:
        LOGGER.critical("%s", exc)
        sys.exit(1)
    except KeyboardInterrupt:
        LOGGER.critical("Interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # The target went away; whatever it kept, the next run resumes from its state.
        logging.shutdown()
        sys.exit(1)
    except Exception:
        LOGGER.critical("Unexpected error (a bug in tap-wootric; please report it)", exc_info=True)
        sys.exit(1)
