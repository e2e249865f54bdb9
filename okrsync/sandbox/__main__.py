"""Command line: `python -m okrsync.sandbox --port 8765 --seed 7 --sizes jira=300,github=500`."""

from __future__ import annotations

import argparse

from okrsync.sandbox import DEFAULT_SIZES, serve


def parse_sizes(text: str) -> dict[str, int]:
    sizes = dict(DEFAULT_SIZES)
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        sizes[name.strip()] = int(value)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m okrsync.sandbox")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--sizes",
        default="",
        help="tracker=n,... (defaults as Sandbox); github_project=n: items on the acme/12 board",
    )
    parser.add_argument("--warm", action="store_true", help="pre-render every item's JSON")
    args = parser.parse_args()
    serve(args.port, args.seed, parse_sizes(args.sizes), host=args.host, warm=args.warm)


if __name__ == "__main__":
    main()
