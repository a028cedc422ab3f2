"""The container image and the compose file, as an operator deploys them.

On every run: hadolint passes the Dockerfile; compose.yaml is valid by the Compose Specification's own
schema, starts its processes in a health-gated order, keeps data in volumes and takes secrets only
from the env file; the image's entrypoint, run here as the image runs it, migrates before gunicorn
serves, and runs the worker, beat and one-off commands.

Building and running the image needs podman (Debian's) and a base image; no registry is reachable
here, so ``scripts/container-smoke.sh`` makes one with debootstrap and runs
``test_the_image_builds_and_delivers_a_campaign`` (``CONTAINER_SMOKE=1``; skipped otherwise).
"""
import os
import re
import secrets
import shutil
import subprocess
import uuid

import pymongo
import pytest
import requests
import yaml
from kombu import Connection, Queue

from tests.processes import ROOT, VENV_BIN, Process, base_env, free_port, wait_until

COMPOSE = ROOT / "compose.yaml"
APP_SERVICES = ("web", "worker", "beat")
STORES = ("mongo", "rabbitmq", "redis")
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([str(VENV_BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_the_dockerfile_builds_from_the_lock_as_a_user_with_a_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert len(stages) == 2 and all(stage == "${BASE_IMAGE}" for stage in stages)  # multi-stage, one slim base
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", dockerfile, flags=re.M)
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.M)  # not root
    assert re.search(r"^HEALTHCHECK .*deploy/healthcheck\.py", dockerfile, flags=re.M | re.S)
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", "tests", "deploy/*.env"} <= set(ignored)


def test_compose_is_valid_by_the_compose_specification():
    result = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("podman"), reason="podman-compose needs podman (Debian's) on PATH")
def test_a_compose_implementation_reads_it_and_refuses_it_without_the_broker_password(tmp_path):
    env = base_env(CRM_ENV_FILE=str(ROOT / "deploy" / "production.env.example"))
    env.pop("RABBITMQ_PASSWORD", None)
    command = [str(VENV_BIN / "podman-compose"), "-f", str(COMPOSE), "config"]
    refused = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "RABBITMQ_PASSWORD" in refused.stderr
    result = subprocess.run(command, env={**env, "RABBITMQ_PASSWORD": "s3cret-pw"}, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["services"]["worker"]["environment"]["CELERY_BROKER_URL"] == "amqp://crm:s3cret-pw@rabbitmq:5672//"


def test_compose_starts_the_stores_then_web_then_worker_and_beat():
    services = compose()["services"]
    assert set(services) == {*APP_SERVICES, *STORES}
    for store in STORES:
        assert services[store]["healthcheck"]["test"], store
        assert any(volume.split(":")[1].startswith(("/data", "/var/lib")) for volume in services[store]["volumes"])
    assert services["web"]["depends_on"] == {store: {"condition": "service_healthy"} for store in STORES}
    for process in ("worker", "beat"):  # after web, whose entrypoint ran the migrations
        assert services[process]["depends_on"] == {"web": {"condition": "service_healthy"}}
    for process in APP_SERVICES:
        service = services[process]
        assert service["command"] == [process] and service["build"] == "."
        assert service["environment"]["APP_ENV"] == "production"
        assert service["env_file"] == [{"path": "${CRM_ENV_FILE:-deploy/production.env}", "required": True}]
    assert set(compose()["volumes"]) == {"mongo-data", "rabbitmq-data", "redis-data", "metrics"}
    for process in APP_SERVICES:  # one metrics directory for every process, so /metrics adds them all up
        assert services[process]["volumes"] == ["metrics:/var/lib/crm-metrics"]
        assert services[process]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/var/lib/crm-metrics"


def test_no_secret_has_a_value_in_the_compose_file_or_the_example_env_file():
    text = COMPOSE.read_text()
    for name in ("SESSION_SECRET", "UNSUBSCRIBE_SECRET", "VENDOR_WEBHOOK_SECRET", "GOOGLE_CLIENT_SECRET"):
        assert name not in text
    example = dict(line.split("=", 1) for line in (ROOT / "deploy" / "production.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    for name in ("SESSION_SECRET", "UNSUBSCRIBE_SECRET", "VENDOR_WEBHOOK_SECRET", "GOOGLE_CLIENT_SECRET",
                 "METRICS_TOKEN"):
        assert example[name] == "", name  # empty: the server refuses to start until it is filled in
    assert "deploy/production.env" in (ROOT / ".gitignore").read_text().split()


# --- the entrypoint, run here as the image runs it --------------------------------------------------

def _entrypoint_env(uri, port, **extra):
    return base_env(APP_ENV="development", HOST="127.0.0.1", PORT=port, MONGO_URI=uri, GOOGLE_CLIENT_ID="",
                    GOOGLE_CLIENT_SECRET="", SESSION_SECRET=secrets.token_urlsafe(48), WEB_CONCURRENCY=1,
                    PATH=f"{VENV_BIN}:{os.environ['PATH']}", **extra)


@pytest.mark.own_processes
def test_the_entrypoint_migrates_before_gunicorn_serves(mongo_standin, tmp_path):
    uri = mongo_standin().uri("crm_entrypoint_test")
    database = pymongo.MongoClient(uri).get_default_database()
    database.campaigns.insert_one({"name": "Old", "message": "Hi", "status": "draft"})  # as before subjects
    port = free_port()
    web = Process("web", [str(ENTRYPOINT), "web"], _entrypoint_env(uri, port), tmp_path).start()
    try:
        wait_until(lambda: _answers(port), 60, interval=0.2, what="the entrypoint's gunicorn")
        output = web.output()
        assert "0001 campaign subjects: 1 campaigns" in output and "Booting worker" in output
        assert output.index("Database at") < output.index("Booting worker")  # migrated first
        assert database.campaigns.find_one({"name": "Old"})["subject"] == "Old"
    finally:
        web.stop()
    status = subprocess.run([str(ENTRYPOINT), "flask", "db", "status", "--check"], cwd=ROOT,
                            env=_entrypoint_env(uri, port), capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "Up to date." in status.stdout, status.stdout + status.stderr
    again = subprocess.run([str(ENTRYPOINT), "migrate"], cwd=ROOT, env=_entrypoint_env(uri, port),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already: nothing to apply" in again.stdout


@pytest.mark.own_processes
def test_web_skips_the_migrations_when_told_to(mongo_standin, tmp_path):
    uri = mongo_standin().uri("crm_entrypoint_test")
    port = free_port()
    web = Process("web", [str(ENTRYPOINT), "web"], _entrypoint_env(uri, port, MIGRATE_ON_START=0), tmp_path).start()
    try:
        wait_until(lambda: _answers(port), 60, interval=0.2, what="the entrypoint's gunicorn")
        assert pymongo.MongoClient(uri).get_default_database().migrations.count_documents({}) == 0
        wait_until(lambda: "data migration(s) pending" in web.output(), 20, what="the pending-migrations warning")
    finally:
        web.stop()


def _answers(port, path="/healthz"):
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# --- the image itself: scripts/container-smoke.sh ---------------------------------------------------

def _podman(*args, timeout=900, check=True):
    command = ["podman", *(["--runtime", os.environ["PODMAN_RUNTIME"]] if os.environ.get("PODMAN_RUNTIME") else []),
               *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.own_processes
@pytest.mark.skipif(os.environ.get("CONTAINER_SMOKE") != "1", reason="builds the image: scripts/container-smoke.sh")
def test_the_image_builds_and_delivers_a_campaign(mongo_standin, redis_url, rabbitmq_url, tmp_path):
    """Web and worker containers from the image (host network, production mode) against the stand-in,
    RabbitMQ and Redis: migrations at start, non-root, healthy, a campaign delivered by the worker."""
    tag = f"localhost/crm:smoke-{uuid.uuid4().hex[:6]}"
    base = os.environ.get("CONTAINER_BASE_IMAGE", "python:3.11-slim-bookworm")
    _podman("build", "--format", "docker", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "-t", tag,
            str(ROOT))
    uri = mongo_standin().uri("crm_image_test")
    queue = f"crm-image-{uuid.uuid4().hex[:6]}"
    port = free_port()
    settings = {"MONGO_URI": uri, "CELERY_BROKER_URL": rabbitmq_url, "CELERY_QUEUE": queue,
                "SESSION_REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url, "RATELIMIT_KEY_PREFIX": queue,
                "SESSION_SECRET": secrets.token_urlsafe(48), "UNSUBSCRIBE_SECRET": secrets.token_urlsafe(48),
                "VENDOR_WEBHOOK_SECRET": secrets.token_urlsafe(48), "PORT": str(port), "WEB_CONCURRENCY": "2",
                "PUBLIC_URL": "https://crm.example.com", "FRONTEND_URL": "https://crm.example.com",
                "METRICS_TOKEN": secrets.token_urlsafe(32), "PROMETHEUS_MULTIPROC_DIR": "/var/lib/crm-metrics"}
    shared = tmp_path / "metrics"  # the volume compose.yaml shares between web and worker
    shared.mkdir()
    shared.chmod(0o777)
    env_file = tmp_path / "production.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    names = {process: f"{queue}-{process}" for process in ("web", "worker")}
    try:
        for process, name in names.items():
            _podman("run", "-d", "--name", name, "--network", "host", "--env-file", str(env_file),
                    "-v", f"{shared}:/var/lib/crm-metrics", tag, process)
        try:
            wait_until(lambda: _answers(port), 90, interval=0.5, what="the web container")
        except TimeoutError:
            logs = _podman("logs", names["web"], check=False).stderr[-4000:]
            pytest.fail(f"the web container never answered:\n{logs}")
        logs = _podman("logs", names["web"]).stdout + _podman("logs", names["web"]).stderr
        assert "Database at" in logs
        assert _podman("exec", names["web"], "id", "-u").stdout.strip() == "10001"
        assert _podman("healthcheck", "run", names["web"], check=False).returncode == 0
        inspect = _podman("image", "inspect", tag, "--format", "{{json .Config.Healthcheck}}").stdout
        assert "deploy/healthcheck.py" in inspect
        # an operator and a key, as in production (no development key): the user row, then the CLI
        client = pymongo.MongoClient(uri)
        client.get_default_database().users.insert_one(
            {"googleId": "smoke-ops", "email": "ops@example.com", "displayName": "Ops", "role": "admin"})
        key = _podman("exec", names["web"], "flask", "create-api-key", "--email", "ops@example.com", "--name",
                      "smoke").stdout.strip().splitlines()[-1]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        base_url = f"http://127.0.0.1:{port}"
        people = [{"name": f"P{i}", "email": f"p{i}@shop.example"} for i in range(5)]
        assert session.post(f"{base_url}/api/customers/bulk", json=people).json()["counts"]["created"] == 5
        campaign = session.post(f"{base_url}/api/campaigns", json={"name": "Image", "text": "Hi", "rules": []}).json()
        assert session.post(f"{base_url}/api/campaigns/{campaign['_id']}/send").status_code == 202

        def completed():
            answer = session.get(f"{base_url}/api/campaigns/{campaign['_id']}").json()
            return answer if answer["status"] == "completed" else None

        try:
            done = wait_until(completed, 90, interval=0.5, what="the worker container's send")
        except TimeoutError:
            pytest.fail("nothing delivered:\n" + _podman("logs", names["worker"], check=False).stderr[-4000:])
        assert done["stats"]["total"] == 5 and done["stats"]["pending"] == 0
        # the worker container's hand-offs, in the web container's /metrics
        scraped = requests.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {settings['METRICS_TOKEN']}"})
        assert scraped.status_code == 200
        assert re.search(r'^crm_messages_total\{outcome="handed_off"\} 5\.0$', scraped.text, flags=re.M), scraped.text
    finally:
        for name in names.values():
            _podman("rm", "-f", name, check=False)
        _podman("rmi", "-f", tag, check=False)
        with Connection(rabbitmq_url) as connection:
            for name in (queue, f"{queue}-imports"):
                Queue(name, channel=connection.channel()).delete()
