"""The outside tools a user runs on this API, as they run them: against a live server over HTTP.

- ``newman run`` of the exported Postman collection against a fresh server with default settings,
  given only ``baseUrl`` and ``apiKey`` (and ``webhookSecret``, so the receipts request is signed):
  every assertion passes.
- ``schemathesis run`` with every check, every phase (examples, coverage, fuzzing and the stateful
  phase following the document's links), seeded, on a budget: no failure. Only Google sign-in is left
  out (by name: it is not configured on this server, and answers 503 as documented); the assistant is
  configured against the local Gemini stand-in.

Both tools are pinned: newman in package-lock.json, schemathesis in requirements-dev.lock.
"""
import json
import re
import subprocess

import pytest

from tests.processes import ROOT, VENV_BIN, Gunicorn, base_env

pytestmark = pytest.mark.own_processes
WEBHOOK_SECRET = "receipts-" + "k3Jq9vXw2LmN8pRt5YzA7cEf"
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
SCHEMATHESIS_CONFIG = ROOT / "apidocs" / "schemathesis.toml"
# Not configured on the test server; each answers 503 "Google sign-in is not configured", as documented.
NOT_CONFIGURED = r"^/(api/)?auth/google"


def _server(tmp_path, gemini=None, **settings):
    env = base_env(APP_ENV="development", GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_SECRET="",
                   VENDOR_WEBHOOK_SECRET=WEBHOOK_SECRET, **settings)
    if gemini is not None:
        env.update(GEMINI_API_KEY="stand-in-key", GEMINI_API_ENDPOINT=gemini.url)
    server = Gunicorn(env, tmp_path, workers=1, threads=8).start()
    keys = re.findall(r"development admin API key[^:]*: (crm_\S+)", server.output())
    assert len(keys) == 1, server.output()
    return server, keys[0]


def test_newman_runs_the_exported_collection_with_every_assertion_passing(tmp_path):
    assert NEWMAN.exists(), "run scripts/setup-node.sh (scripts/test.sh does)"
    server, key = _server(tmp_path)
    try:
        exported = subprocess.run([str(VENV_BIN / "flask"), "export-postman", "--base-url", server.base],
                                  cwd=ROOT, env=base_env(), capture_output=True, text=True, timeout=120)
        assert exported.returncode == 0, exported.stderr
        collection = tmp_path / "crm.postman_collection.json"
        collection.write_text(exported.stdout)
        report = tmp_path / "newman.json"
        result = subprocess.run(
            [str(NEWMAN), "run", str(collection), "--env-var", f"apiKey={key}",
             "--env-var", f"webhookSecret={WEBHOOK_SECRET}", "--color", "off",
             "--reporters", "cli,json", "--reporter-json-export", str(report)],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        stats = json.loads(report.read_text())["run"]["stats"]
        assert stats["assertions"]["failed"] == 0 and stats["requests"]["failed"] == 0
        requests = sum(len(folder["item"]) for folder in json.loads(exported.stdout)["item"])
        assert stats["requests"]["total"] >= requests >= 80  # (a request polled for background work counts again)
        assert stats["assertions"]["total"] >= 2 * requests  # a status and at least one more each
    finally:
        server.stop()


def test_schemathesis_finds_nothing_over_http_with_every_check_and_the_stateful_phase(tmp_path, gemini):
    server, key = _server(tmp_path, gemini=gemini, RATELIMIT_ENABLED="false")
    try:
        result = subprocess.run(
            [str(VENV_BIN / "schemathesis"), "--config-file", str(SCHEMATHESIS_CONFIG), "run",
             f"{server.base}/api/openapi.json", "--checks", "all", "--seed", "20261203",
             "--phases", "examples,coverage,fuzzing,stateful", "--exclude-path-regex", NOT_CONFIGURED,
             "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml")],
            cwd=ROOT, env=base_env(CRM_API_KEY=key, SCHEMATHESIS_HOOKS="apidocs.schemathesis_hooks"),
            # 9-18 minutes on these 2-core machines since the flows' operations (generating their nested bodies)
            capture_output=True, text=True, timeout=1800)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-12000:]
        assert "Stateful" in output and re.search(r"Tested: (\d+)", output), output[-3000:]
        assert int(re.search(r"Tested: (\d+)", output).group(1)) >= 100  # every operation and alias
        assert "500 Internal Server Error" not in server.output()
    finally:
        server.stop()
