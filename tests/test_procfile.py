"""The Procfile as a platform runs it (honcho, the Python port of foreman), and the Render blueprint.

``honcho start`` runs the Procfile's web, worker and beat against the MongoDB stand-in, the real
RabbitMQ and Redis; a campaign sent through the web is delivered by the worker, and a scheduled one
is started by beat. Without the worker line nothing is sent; without beat nothing scheduled starts.
First the release line runs (``honcho run``, as a platform's release phase does): the data migrations.
"""
import contextlib
import re
import shlex
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml
from kombu import Connection, Queue

from tests.processes import ROOT, VENV_BIN, Process, base_env, free_port, wait_until

pytestmark = pytest.mark.own_processes
PROCESSES = ("web", "worker", "beat")
RELEASE = "release"  # run once before the processes start (Heroku's release phase, Render's pre-deploy)


def procfile():
    """``{process: command}`` of the repository's Procfile."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.fixture
def honcho(mongo_standin, redis_url, rabbitmq_url, tmp_path):
    with run_procfile(mongo_standin, redis_url, rabbitmq_url, tmp_path) as running:
        yield running[:3]


@contextlib.contextmanager
def run_procfile(mongo_standin, redis_url, rabbitmq_url, tmp_path, port=None, **settings):
    """The release line, then ``honcho start web worker beat``; yields ``(base URL, a session with the
    development key, the honcho process, the database URI)``. ``settings`` go into every process's
    environment."""
    queue = f"crm-procfile-{uuid.uuid4().hex[:8]}"
    port = port or free_port()
    uri = mongo_standin().uri("crm_procfile_test")
    env = base_env(
        APP_ENV="development", HOST="127.0.0.1", GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_SECRET="",
        MONGO_URI=uri, CELERY_BROKER_URL=rabbitmq_url, CELERY_QUEUE=queue,
        SESSION_REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url, RATELIMIT_KEY_PREFIX=queue,
        SESSION_SECRET=uuid.uuid4().hex * 2, SCHEDULER_INTERVAL_S=1, WEB_CONCURRENCY=2,
        BEAT_SCHEDULE_FILE=str(tmp_path / "beat-schedule"), PATH=f"{VENV_BIN}:{base_env()['PATH']}",
        **settings,
    )
    release = subprocess.run([str(VENV_BIN / "honcho"), "run", "-f", str(ROOT / "Procfile"), "-d", str(ROOT),
                              *shlex.split(procfile()[RELEASE])], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert release.returncode == 0 and "Database at" in release.stdout, release.stdout + release.stderr
    process = Process("honcho", [str(VENV_BIN / "honcho"), "start", "-f", str(ROOT / "Procfile"),
                                 "-d", str(ROOT), "-p", str(port), *PROCESSES], env, tmp_path).start()
    base = f"http://127.0.0.1:{port}"

    def up():
        assert process.running(), process.output()
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, 60, interval=0.2, what="the Procfile's web process")
        key = wait_until(lambda: re.findall(r"development admin API key[^:]*: (crm_\S+)", process.output()),
                         10, what="the development key")[0]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        yield base, session, process, uri
    finally:
        process.stop()
        with Connection(rabbitmq_url) as connection:
            for name in (queue, f"{queue}-imports"):
                Queue(name, channel=connection.channel()).delete()


def test_the_procfile_runs_web_worker_and_beat_and_sends_a_campaign(honcho):
    base, session, process = honcho
    people = [{"name": f"P{i}", "email": f"p{i}@shop.example"} for i in range(5)]
    assert session.post(f"{base}/api/customers/bulk", json=people).json()["counts"]["created"] == 5
    campaign = session.post(f"{base}/api/campaigns", json={"name": "Now", "text": "Hi", "rules": []}).json()
    assert session.post(f"{base}/api/campaigns/{campaign['_id']}/send").status_code == 202

    def completed(campaign_id):
        answer = session.get(f"{base}/api/campaigns/{campaign_id}").json()
        return answer if answer["status"] == "completed" else None

    done = wait_until(lambda: completed(campaign["_id"]), 60, interval=0.3, what="the worker's send")
    assert done["stats"]["total"] == 5 and done["stats"]["pending"] == 0
    deliveries = session.get(f"{base}/api/campaigns/{campaign['_id']}/deliveries").json()
    assert sorted(item["email"] for item in deliveries["items"]) == sorted(p["email"] for p in people)
    # beat starts a scheduled campaign
    at = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    scheduled = session.post(f"{base}/api/campaigns", json={"name": "Later", "text": "Hi", "rules": [],
                                                            "scheduledAt": at}).json()
    assert scheduled["status"] == "scheduled"
    assert wait_until(lambda: completed(scheduled["_id"]), 60, interval=0.3, what="beat's start")
    output = process.output()
    assert all(f"{name}.1" in output for name in PROCESSES), output[-3000:]
    assert "data migration(s) pending" not in output  # the release line ran them before the web started


def test_the_render_blueprint_runs_the_procfile_processes_with_no_secret_in_it():
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    services = {service["name"]: service for service in blueprint["services"]}
    commands = procfile()
    assert set(commands) == {*PROCESSES, RELEASE}
    web, worker, beat = services["crm-web"], services["crm-worker"], services["crm-beat"]
    assert (web["type"], worker["type"], beat["type"]) == ("web", "worker", "worker")
    assert web["healthCheckPath"] == "/healthz"
    assert web["preDeployCommand"] == commands[RELEASE] == "flask db upgrade"
    assert worker["startCommand"] == commands["worker"]
    assert beat["startCommand"].split(" --schedule")[0] == commands["beat"].split(" --schedule")[0]
    assert web["startCommand"].split(" --bind")[0] == commands["web"].split(" --bind")[0] == "gunicorn wsgi:app"
    for service in (web, worker, beat):
        assert service["buildCommand"] == "pip install --require-hashes -r requirements.lock"
        assert {"fromGroup": "crm-settings"} in service["envVars"]
    assert any(s["type"] == "keyvalue" for s in blueprint["services"])
    settings = {v["key"]: v for v in blueprint["envVarGroups"][0]["envVars"]}
    assert settings["APP_ENV"]["value"] == "production"
    for secret in ("SESSION_SECRET", "UNSUBSCRIBE_SECRET", "VENDOR_WEBHOOK_SECRET", "GOOGLE_CLIENT_SECRET",
                   "MONGO_URI", "CELERY_BROKER_URL", "GEMINI_API_KEY"):
        assert "value" not in settings[secret], secret  # generated by Render or entered there
