"""The deployment files ops use: Dockerfile, compose.yaml, deploy/okrsync.service, the docs.

No container engine runs on CI, and hadolint cannot be installed offline: the Dockerfile is
read here instruction by instruction and held to the rules that matter for this image, and
compose.yaml is parsed with a YAML parser. The systemd unit is rated by `systemd-analyze
security --offline=yes` where systemd-analyze exists (it does on this project's machines);
its directives are also asserted one by one, so a machine without it still checks the unit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from okrsync.config import load_settings
from okrsync.demo import sandbox_connectors, sandbox_env
from okrsync.sandbox import Sandbox
from okrsync.web.access import check_bind
from tests.helpers import TREE, CliResult, run_cli, write

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
UNIT = REPO / "deploy" / "okrsync.service"
CONTAINER_CONFIG = REPO / "deploy" / "container.toml"
DEPLOYMENT = REPO / "docs" / "deployment.md"
WEB_TOKENS_SECRET = "okrsync_web_tokens"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_?KEY|PRIVATE", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        start = start or number
        pending += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            keyword, _, args = pending.strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip(), start))
            pending, start = "", 0
    return found


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by stage (each begins with FROM); ARGs before the first dropped."""
    grouped: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(ins)
    return grouped


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            name, value = ins.args.split("=", 1)
            args[name] = value
    return args


def base_image(ins: Instruction, args: dict[str, str]) -> str:
    image = ins.args.split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def flags(ins: Instruction) -> dict[str, str]:
    return dict(f.removeprefix("--").partition("=")[::2] for f in ins.args.split() if f[:2] == "--")


def exec_form(ins: Instruction) -> list[str]:
    body = ins.args.split("CMD", 1)[1] if ins.keyword == "HEALTHCHECK" else ins.args
    parsed: list[str] = json.loads(body.strip())
    return parsed


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    """Two stages or more, each FROM a slim Python with a full version tag (never latest)."""
    instructions = dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    groups = stages(instructions)
    assert len(groups) >= 2
    args = global_args(instructions)
    for group in groups:
        image = base_image(group[0], args)
        name, _, tag = image.partition(":")
        assert name in ("python", "docker.io/library/python"), image
        assert re.fullmatch(r"3\.\d+\.\d+-slim(-\w+)?", tag), f"{image}: pin a full version"
    final = groups[-1]
    copies = [i for i in final if i.keyword == "COPY"]
    assert any(flags(i).get("from") for i in copies), "the final stage copies from the build"
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in final)


def test_dockerfile_final_stage_runs_unprivileged_with_healthcheck() -> None:
    """Final stage: non-root USER, /data volume, HEALTHCHECK on /healthz, `okrsync run`."""
    final = stages(dockerfile(DOCKERFILE.read_text(encoding="utf-8")))[-1]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "the final stage names a USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(i.keyword == "VOLUME" and "/data" in i.args for i in final)
    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    port = load_settings(CONTAINER_CONFIG).service.port
    assert f"127.0.0.1:{port}/healthz" in " ".join(exec_form(checks[0]))
    assert {i.args for i in final if i.keyword == "EXPOSE"} == {str(port)}
    entry = [exec_form(i) for i in final if i.keyword == "ENTRYPOINT"]
    assert entry == [["okrsync", "run"]]


def test_dockerfile_copies_owned_files_and_keeps_secrets_out() -> None:
    """No ADD of URLs, no secrets in ENV or ARG, every final-stage COPY has --chown."""
    instructions = dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    assert not [i for i in instructions if i.keyword == "ADD" and "://" in i.args]
    for ins in instructions:
        if ins.keyword in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", ins.args) or [ins.args.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], f"line {ins.line}"
    final = stages(instructions)[-1]
    for ins in final:
        if ins.keyword == "COPY":
            assert "chown" in flags(ins), f"line {ins.line}: COPY --chown=..."


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    """Every path the build copies from the context exists and .dockerignore keeps it."""
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for ins in dockerfile(DOCKERFILE.read_text(encoding="utf-8")):
        if ins.keyword != "COPY" or "from" in flags(ins):
            continue
        *sources, _dest = [w for w in ins.args.split() if not w.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"line {ins.line}: {source}"
            assert source.split("/")[0] not in ignored, f"line {ins.line}: {source} is ignored"


def test_container_config_is_valid_and_points_into_the_image() -> None:
    """The image's okrsync.toml loads, binds in the container behind bearer tokens read from a
    /run/secrets file, so the bind rule (no public address without auth) lets it start."""
    settings = load_settings(CONTAINER_CONFIG)
    assert settings.service.host == "0.0.0.0"  # noqa: S104 - inside the container's network
    assert settings.store_url().startswith("sqlite:////data/")
    assert settings.logging.format == "json"
    assert settings.web.auth == "token"
    assert settings.web.tokens_file == f"/run/secrets/{WEB_TOKENS_SECRET}"
    check_bind(settings, settings.service.host, "service.host")


def listening_port(log: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """The port of the daemon's `service.listening` event (its JSON log file), once logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        for event in (json.loads(x) for x in lines if x.startswith("{")):
            if event["event"] == "service.listening":
                return int(event["port"])
        assert proc.poll() is None, f"the daemon exited {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError(f"no service.listening in {log} after {timeout}s")


SHIPPED_TOKENS = f'tokens_file = "/run/secrets/{WEB_TOKENS_SECRET}"'


def container_config(tmp_path: Path, sb: Sandbox, tokens: Path) -> Path:
    """The image's okrsync.toml as shipped, its tokens file moved to `tokens`, plus what a user
    adds (a connector: the sandbox's GitHub; the mapping files)."""
    shipped = CONTAINER_CONFIG.read_text(encoding="utf-8")
    assert SHIPPED_TOKENS in shipped
    github = next(c for c in sandbox_connectors(sb) if c.name == "github")
    body = github.model_dump(exclude_none=True, exclude_defaults=True)
    connector = "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items())
    write(tmp_path / "mappings" / "okrs.toml", TREE)
    text = shipped.replace(SHIPPED_TOKENS, f"tokens_file = {json.dumps(str(tokens))}")
    return write(tmp_path / "okrsync.toml", f"{text}\n[[connectors]]\n{connector}")


def container_env(tmp_path: Path, sb: Sandbox, host: str) -> dict[str, str]:
    """The image's /data and /etc/okrsync paths moved to `tmp_path`, any free port."""
    return {
        **sandbox_env(sb),
        "OKRSYNC_STORE__URL": f"sqlite:///{tmp_path / 'okrsync.db'}",
        "OKRSYNC_MAPPINGS__PATHS": json.dumps([str(tmp_path / "mappings")]),
        "OKRSYNC_LOGGING__FILE": str(tmp_path / "okrsync.log"),
        "OKRSYNC_SERVICE__HOST": host,
        "OKRSYNC_SERVICE__PORT": "0",
        "NO_COLOR": "1",
    }


def test_container_config_serves_probes_open_and_pages_behind_its_token(tmp_path: Path) -> None:
    """`okrsync run` on the image's config: /healthz and /readyz answer without a token (the
    HEALTHCHECK), the API and the dashboard are 401 without one and 200 with one."""
    token = "t0k3n-" + "x" * 24
    tokens = write(tmp_path / "web_tokens", f"# who may read\nops:{token}\n")
    tokens.chmod(0o600)
    with Sandbox(seed=3, sizes={"jira": 5, "jira_dc": 5, "asana": 5, "github": 20}) as sb:
        cfg = container_config(tmp_path, sb, tokens)
        env = {**os.environ, **container_env(tmp_path, sb, "127.0.0.1")}
        cmd = [sys.executable, "-m", "okrsync.cli", "-c", str(cfg), "run"]
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{listening_port(tmp_path / 'okrsync.log', proc)}"
            assert httpx.get(f"{base}/healthz", timeout=30).json()["status"] == "alive"
            assert httpx.get(f"{base}/readyz", timeout=30).status_code in (200, 503)
            bearer = {"Authorization": f"Bearer {token}"}
            for path in ("/api/v1/tree", "/"):
                refused = httpx.get(f"{base}{path}", timeout=30)
                assert refused.status_code == 401, path
                assert "authentication required" in refused.text
                served = httpx.get(f"{base}{path}", headers=bearer, timeout=30)
                assert served.status_code == 200, path
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_container_without_its_token_file_exits_2_saying_so(tmp_path: Path) -> None:
    """Without the web tokens secret, the image's config stops at start (exit 2) naming
    web.tokens_file, the file and where it was set, before binding 0.0.0.0; no traceback."""
    missing = tmp_path / "secrets" / WEB_TOKENS_SECRET
    with Sandbox(seed=3, sizes={"jira": 5, "jira_dc": 5, "asana": 5, "github": 20}) as sb:
        cfg = container_config(tmp_path, sb, missing)
        env = container_env(tmp_path, sb, "0.0.0.0")  # noqa: S104 - refused before binding
        r = run_cli("-c", str(cfg), "run", cwd=tmp_path, env=env)
    assert r.code == 2, r.stderr
    text = " ".join(r.stderr.split())
    assert f"cannot read web.tokens_file {missing}" in text
    assert "okrsync.toml:" in text
    assert "Traceback" not in r.stderr


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_compose_runs_okrsync_after_a_healthy_postgresql_15() -> None:
    """compose.yaml: okrsync and PostgreSQL 15, both with healthchecks, okrsync waits for db."""
    services = compose()["services"]
    assert set(services) == {"db", "okrsync"}
    assert re.fullmatch(r"postgres:15\.\d+(-\w+)?", services["db"]["image"])
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["okrsync"]["healthcheck"]["test"])
    assert services["okrsync"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["okrsync"]["build"] == "."
    assert (REPO / "Dockerfile").is_file()


def mount(volume: str | dict[str, Any]) -> list[str]:
    """[source, target] of a short (`src:dst[:ro]`) or long (`source:`/`target:`) mount."""
    if isinstance(volume, dict):
        return [str(volume["source"]), str(volume["target"])]
    return volume.split(":")[:2]


def test_compose_volumes_and_ports_are_declared_and_local() -> None:
    """Named volumes exist at the top level; the store and /data persist; ports stay local."""
    doc = compose()
    services = doc["services"]
    declared = set(doc["volumes"])
    mounts = {n: [mount(v) for v in s.get("volumes", [])] for n, s in services.items()}
    for parts in (p for ms in mounts.values() for p in ms):
        if not parts[0].startswith("."):
            assert parts[0] in declared, parts
    binds = [v for s in services.values() for v in s.get("volumes", []) if isinstance(v, dict)]
    assert all(v["bind"]["create_host_path"] is False for v in binds if v["type"] == "bind")
    assert [p[1] for p in mounts["db"] if p[0] in declared] == ["/var/lib/postgresql/data"]
    assert "/data" in [p[1] for p in mounts["okrsync"] if p[0] in declared]
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def test_compose_secrets_come_from_files_never_from_the_file_itself() -> None:
    """Passwords and tokens: secret files or an env file; no literal value in compose.yaml."""
    doc = compose()
    declared = doc["secrets"]
    for name, service in doc["services"].items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name}: secret {secret} is not declared"
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret; use {key}_FILE"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"
        url = service.get("environment", {}).get("OKRSYNC_STORE_URL")
        if url:
            assert urlsplit(url).password is None, f"{name}: a password in OKRSYNC_STORE_URL"
    for secret in declared.values():
        assert set(secret) == {"file"}
    db_env = doc["services"]["db"]["environment"]
    assert db_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"


def test_compose_serves_the_web_behind_tokens_from_a_secret() -> None:
    """compose.yaml binds okrsync off loopback, so it turns on token auth whatever okrsync.toml
    says, with the tokens file mounted as a declared secret (never a literal token)."""
    doc = compose()
    service = doc["services"]["okrsync"]
    env = service["environment"]
    assert env["OKRSYNC_SERVICE__HOST"] == "0.0.0.0"  # noqa: S104 - the container's network
    assert env["OKRSYNC_WEB__AUTH"] == "token"
    assert env["OKRSYNC_WEB__TOKENS_FILE"] == f"/run/secrets/{WEB_TOKENS_SECRET}"
    assert WEB_TOKENS_SECRET in service["secrets"]
    assert doc["secrets"][WEB_TOKENS_SECRET] == {"file": "./secrets/web_tokens"}


def unit_directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` → every value given (systemd allows a key more than once)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures": "native",
    "StateDirectory": "okrsync",
    "LogsDirectory": "okrsync",
    "UMask": "0077",
    "RestartPreventExitStatus": "2",
}


def test_systemd_unit_hardening_directives() -> None:
    """The unit runs as its own user with the hardening directives that its rating rests on."""
    d = unit_directives(UNIT.read_text(encoding="utf-8"))
    assert d.get("Service.User") == ["okrsync"] or d.get("Service.DynamicUser") == ["yes"]
    for key, value in HARDENING.items():
        assert d.get(f"Service.{key}", [None])[-1] == value, key
    assert "@system-service" in d["Service.SystemCallFilter"]
    assert d["Service.ExecStart"][0].endswith(" run")
    assert d["Install.WantedBy"] == ["multi-user.target"]


def test_systemd_unit_rates_under_3_in_systemd_analyze() -> None:
    """`systemd-analyze security --offline=yes` rates the unit under 3.0 and `verify` finds no
    unknown or malformed directive. On a machine without systemd-analyze (this project's have
    it), the test asserts the hardening directives statically instead, never skips."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        test_systemd_unit_hardening_directives()
        return
    rated = subprocess.run(
        [tool, "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for okrsync\.service: ([\d.]+)", rated.stdout)
    assert found, rated.stdout + rated.stderr
    assert float(found.group(1)) < 3.0, rated.stdout
    verified = subprocess.run(
        [tool, "verify", str(UNIT)], capture_output=True, text=True, timeout=60, check=False
    )
    complaints = [
        line
        for line in verified.stderr.splitlines()
        if re.search(r"Unknown|Failed to parse|Invalid|Ignoring|not valid", line)
    ]
    assert complaints == []


def log_stream(result: CliResult) -> str:
    """The one stream a command's JSON log lines went to."""
    streams = {
        name
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
        if any(line.startswith('{"') for line in text.splitlines())
    }
    assert len(streams) == 1, result
    return streams.pop()


def test_deployment_doc_names_the_streams_okrsync_logs_to(tmp_path: Path) -> None:
    """docs/deployment.md says where the JSON log lines go, as `run` and `sync --once` do it."""
    with Sandbox(seed=3, sizes={"jira": 5, "jira_dc": 5, "asana": 5, "github": 20}) as sb:
        github = next(c for c in sandbox_connectors(sb) if c.name == "github")
        body = github.model_dump(exclude_none=True, exclude_defaults=True)
        connector = "".join(f"{k} = {json.dumps(v)}\n" for k, v in body.items())
        write(tmp_path / "mappings" / "okrs.toml", TREE)
        cfg = write(
            tmp_path / "okrsync.toml",
            f'[logging]\nformat = "json"\n[service]\nenabled = false\n[[connectors]]\n{connector}',
        )
        daemon = run_cli("-c", str(cfg), "run", "--once", cwd=tmp_path, env=sandbox_env(sb))
        command = run_cli("-c", str(cfg), "sync", "--once", cwd=tmp_path, env=sandbox_env(sb))
    assert daemon.code == 0, daemon.stderr
    assert command.code == 0, command.stderr
    doc = " ".join(DEPLOYMENT.read_text(encoding="utf-8").split())
    stream = log_stream(daemon)
    other = "stderr" if stream == "stdout" else "stdout"
    assert f"writes its logs as JSON lines on {stream}" in doc
    assert f"JSON lines on {other}" not in doc
    assert f"writes its log lines on {log_stream(command)}" in doc


def test_deploy_files_point_at_sections_that_exist() -> None:
    """Each `docs/deployment.md, "Section"` reference in the deploy files names a real heading."""
    doc = DEPLOYMENT.read_text(encoding="utf-8")
    refs = [
        (source.name, ref)
        for source in (DOCKERFILE, COMPOSE, UNIT, CONTAINER_CONFIG)
        for ref in re.findall(r'docs/deployment\.md, "([^"]+)"', source.read_text(encoding="utf-8"))
    ]
    assert len(refs) >= 3
    missing = [r for r in refs if not re.search(rf"^#+ {re.escape(r[1])}", doc, re.MULTILINE)]
    assert missing == []
