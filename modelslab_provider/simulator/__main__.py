"""Command line: ``python -m modelslab_provider.simulator [--port 8765] ...``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from .state import SimConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelslab_provider.simulator",
        description="Local ModelsLab video API simulator (no credits, no internet).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--queue-limit", type=int, default=0, help="max running jobs per key, 0 = unlimited")
    parser.add_argument("--rate-limit-style", choices=("429", "200"), default="429")
    parser.add_argument("--auth-error-status", type=int, choices=(200, 401), default=200)
    parser.add_argument("--api-key", default=None, help="the only accepted key (default: accept most keys)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds until a job is ready")
    parser.add_argument("--eta", type=float, default=None, help="reported eta (default: the duration)")
    parser.add_argument("--file-delay", type=float, default=0.0, help="seconds a file 404s after ready")
    parser.add_argument("--retry-after", type=float, default=2.0, help="wait reported by rate limits")
    parser.add_argument(
        "--batch-entry-limit",
        type=float,
        default=480.0,
        help="seconds until an unfinished batch entry is failed and refunded (docs: 8 minutes)",
    )
    parser.add_argument("--scenario", default="", help='default markers for every job, e.g. "polls=3"')
    parser.add_argument("--seed", type=int, default=None, help="seed for file names and timings")
    parser.add_argument("-v", "--verbose", action="store_true", help="log one line per request")
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Turn parsed arguments into a validated ``SimConfig``."""
    cfg = SimConfig()
    duration = int(args.duration) if float(args.duration).is_integer() else args.duration
    cfg.update(
        queue_limit=args.queue_limit,
        rate_limit_style=args.rate_limit_style,
        auth_error_status=args.auth_error_status,
        api_key=args.api_key,
        duration=duration,
        eta=args.eta,
        file_delay=args.file_delay,
        batch_entry_limit=args.batch_entry_limit,
        retry_after=int(args.retry_after) if float(args.retry_after).is_integer() else args.retry_after,
        scenario=args.scenario,
    )
    return cfg


async def serve(args: argparse.Namespace) -> None:
    """Start the server, print its URL, and run until SIGINT or SIGTERM."""
    from .app import start_simulator
    from .state import SimState

    state = SimState(config_from_args(args), seed=args.seed)
    server = await start_simulator(args.host, args.port, state=state)
    print(f"ModelsLab simulator listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
