"""Start tap-github with `https://api.github.com` sent to the sandbox (run by the tap's venv).

`python _singer_runner.py --config C --catalog K` behaves as `tap-github --config C --catalog K`
except for two things: at exit it writes its own peak RSS where `BENCH_PEAK_RSS_FILE` says
(`write_peak_rss`), and: tap-github 1.30.1 validates each token with a hard-coded
`GET https://api.github.com/rate_limit` (`PersonalTokenManager.is_valid_token`), whatever
`api_url_base` says. Offline that raises `ConnectionError` and the tap dies before its first
stream (against a GitHub Enterprise server it would dismiss the token). Calls made through
`requests.Session.request` to that host go to `BENCH_GITHUB_API` (the sandbox's `/github`)
instead; the streams themselves send prepared requests to `api_url_base` and are untouched.

This file runs under `.bench-venv/singer/bin/python`, never inside okrsync.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import Any

import requests.sessions

GITHUB_COM = "https://api.github.com"
_original = requests.sessions.Session.request


def _redirected(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(url, str) and url.startswith(GITHUB_COM):
        url = os.environ["BENCH_GITHUB_API"] + url[len(GITHUB_COM) :]
    return _original(self, method, url, *args, **kwargs)


def write_peak_rss() -> None:
    """Write this process's peak RSS in kB (VmHWM) to `BENCH_PEAK_RSS_FILE`, at exit.

    The parent's `wait4` figure will not do: on Linux a child spawned with vfork keeps the
    spawning process's peak as its own `ru_maxrss` across exec (the bench itself grows past
    100 MB holding the sandbox's truth), so both sides would report the bench's peak."""
    target = os.environ.get("BENCH_PEAK_RSS_FILE")
    if not target:
        return
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(target).write_text(line.split()[1])


def main() -> None:
    atexit.register(write_peak_rss)
    requests.sessions.Session.request = _redirected
    from tap_github.tap import TapGitHub

    sys.argv[0] = "tap-github"
    TapGitHub.cli()


if __name__ == "__main__":
    main()
