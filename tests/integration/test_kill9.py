"""`okrsync sync --once` killed with SIGKILL at random points, then two clean syncs: exact truth.

The CLI runs as a subprocess against a sandbox served by this process; between kills the
sandbox changes (edits every round, a deletion and a move every few rounds). Pages are
committed with their cursor in one transaction (one page, or the pages that waited for the
store), so a kill replays at most that transaction's pages and loses nothing; two clean syncs
(the first may resume a killed run, which holds its window when rows moved under its offsets
meanwhile) must leave the store equal to the ground truth, no duplicates.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from okrsync.config import Settings
from okrsync.demo import ENV, MAPPINGS, sandbox_connectors, sandbox_env
from okrsync.sandbox import Sandbox
from okrsync.store import Store
from tests.integration.sandbox_utils import SIZES, TRACKER, differences, sync

ROUNDS = 24
SEED = int(os.environ.get("OKRSYNC_KILL9_SEED", "20261125"))
CONTAINERS = ("section:", "milestone:")


def _config(sb: Sandbox, db: Path) -> str:
    extra = {
        "jira": f'flavor = "auto"\nemail_env = "{ENV["jira_email"]}"\n'
        f'token_env = "{ENV["jira_token"]}"',
        "jira_dc": f'flavor = "auto"\ntoken_env = "{ENV["jira_dc_token"]}"',
        "asana": f'token_env = "{ENV["asana_token"]}"',
        "github": f'token_env = "{ENV["github_token"]}"',
    }
    parts = [
        f'[store]\nurl = "sqlite:///{db}"\n',
        f'[mappings]\npaths = ["{MAPPINGS}"]\n',
        '[logging]\nlevel = "warning"\nformat = "json"\n',
    ]
    for name, tracker in TRACKER.items():
        scopes = ", ".join(f'"{s}"' for s in sb.scopes(tracker))
        kind = "jira" if "jira" in tracker else tracker
        parts.append(
            f'[[connectors]]\nname = "{name}"\ntype = "{kind}"\n'
            f'base_url = "{sb.base_url(tracker)}"\nscope = [{scopes}]\njitter_s = 0\n'
            f"page_size = 20\ncensus_every = 1\n{extra[tracker]}\n"
        )
    return "\n".join(parts)


def _change(sb: Sandbox, rng: random.Random, round_no: int) -> None:
    for tracker in TRACKER.values():
        edited = set(sb.mutate(tracker, rng.randint(1, 6), rng_seed=rng.randrange(1 << 30)))
        if round_no % 4 != 3:
            continue
        truth = sb.truth(tracker)
        live = sorted(
            k
            for k, t in truth.items()
            if not t.deleted
            and not k.startswith(CONTAINERS)
            and t.parent_key is None
            # an edit then a deletion before any run: no tracker shows that last `updated`
            and k not in edited
        )
        gone, moving = rng.sample(live, 2)
        sb.delete(tracker, gone)
        target = rng.choice([s for s in sb.scopes(tracker) if s != truth[moving].scope])
        sb.move(tracker, moving, target)


@pytest.mark.slow
def test_sigkill_at_random_points_then_clean_sync_equals_truth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "okrsync.db"
    config = tmp_path / "okrsync.toml"
    with Sandbox(seed=11, sizes=SIZES) as sb:
        config.write_text(_config(sb, db), encoding="utf-8")
        env = {**os.environ, **sandbox_env(sb)}
        cmd = [sys.executable, "-m", "okrsync.cli", "-c", str(config), "sync", "--once"]
        # Kill points are drawn within how long a whole run takes on this machine (start-up
        # included), measured on a throwaway store, so they land inside runs however fast.
        spare = tmp_path / "spare.toml"
        spare.write_text(_config(sb, tmp_path / "spare.db"), encoding="utf-8")
        started = time.monotonic()
        subprocess.run([*cmd[:4], str(spare), *cmd[5:]], env=env, check=True, capture_output=True)
        run_s = time.monotonic() - started
        killed, finished, outcomes = 0, 0, []
        for round_no in range(ROUNDS):
            delay = rng.uniform(0.2, 0.95) * run_s
            started = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                proc.wait(timeout=delay)
                finished += 1
                run_s = time.monotonic() - started  # the next kill within this run's length
                outcomes.append((round_no, delay, f"exit {proc.returncode}"))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                killed += 1
                outcomes.append((round_no, delay, "killed"))
            if proc.stderr is not None:
                err = proc.stderr.read().decode(errors="replace")
                proc.stderr.close()
                assert "Traceback" not in err, err[-3000:]
            _change(sb, rng, round_no)
        assert killed >= ROUNDS // 2, f"too few runs were actually killed: {outcomes}"

        # The final clean sync (in process, same config): a full, unkilled pass.
        for k, v in sandbox_env(sb).items():
            monkeypatch.setenv(k, v)
        settings = Settings(
            store={"url": f"sqlite:///{db}"},
            connectors=sandbox_connectors(sb, page_size=20, census_every=1),
        )
        store = Store.open(settings.store_url())
        try:
            # Two clean runs: the first may resume the last killed run, which cannot know what
            # moved under its offsets while it was down; it keeps its window (or, on a first
            # listing, lists again) and the second run re-reads it.
            for _ in range(2):
                deadline = time.time() + 1.05  # let the last change's second pass (Date: whole s)
                while (left := deadline - time.time()) > 0:
                    time.sleep(left)
                results = sync(settings, store)
                assert [r.status for r in results] == ["ok"] * 4, [r.error for r in results]
            failures = {name: differences(sb, store, name)[:10] for name in TRACKER}
            detail = {
                name: [
                    (
                        sb.truth(TRACKER[name]).get(
                            d.split()[1]
                            if d.startswith(("missing", "unexpected"))
                            else d.split()[0]
                        ),
                        [i for i in store.items(name) if i.external_id == d.split()[0]],
                    )
                    for d in diffs
                ]
                for name, diffs in failures.items()
                if diffs
            }
            assert failures == {name: [] for name in TRACKER}, (
                SEED,
                outcomes,
                detail,
                [store.cursor(n) for n in failures if failures[n]],
            )
            for name in TRACKER:
                items = store.items(name)
                ids = Counter(i.external_id for i in items)
                keys = Counter(i.key for i in items if i.deleted_at is None)
                assert [k for k, n in ids.items() if n > 1] == [], name
                assert [k for k, n in keys.items() if n > 1] == [], name
        finally:
            store.close()
