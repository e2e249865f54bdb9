"""Start tap-github with `https://api.github.com` sent to the sandbox (run by the tap's venv).

`python _singer_runner.py --config C --catalog K` behaves as `tap-github --config C --catalog K`
except for one thing: tap-github 1.30.1 validates each token with a hard-coded
`GET https://api.github.com/rate_limit` (`PersonalTokenManager.is_valid_token`), whatever
`api_url_base` says. Offline that raises `ConnectionError` and the tap dies before its first
stream (against a GitHub Enterprise server it would dismiss the token). Calls made through
`requests.Session.request` to that host go to `BENCH_GITHUB_API` (the sandbox's `/github`)
instead; the streams themselves send prepared requests to `api_url_base` and are untouched.

This file runs under `.bench-venv/singer/bin/python`, never inside okrsync.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import requests.sessions

GITHUB_COM = "https://api.github.com"
_original = requests.sessions.Session.request


def _redirected(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(url, str) and url.startswith(GITHUB_COM):
        url = os.environ["BENCH_GITHUB_API"] + url[len(GITHUB_COM) :]
    return _original(self, method, url, *args, **kwargs)


def main() -> None:
    requests.sessions.Session.request = _redirected
    from tap_github.tap import TapGitHub

    sys.argv[0] = "tap-github"
    TapGitHub.cli()


if __name__ == "__main__":
    main()
