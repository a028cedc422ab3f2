"""Swagger UI in a real headless Chromium: the operations are listed and "Try it out" works."""
import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from models.roles import MARKETER
from tests.factories import make_user, session_cookie, signed_in

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _browser_or_skip():
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package")
        sync_playwright = None
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing.append(f"Chromium at {CHROMIUM} (Debian package 'chromium')")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " (REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture
def live_server(app):
    """The test app served over real HTTP on an ephemeral port, sharing the test's database."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


_RENDERED_OPERATIONS = """() => [...document.querySelectorAll('.opblock')].map(block => [
    (block.className.match(/opblock-(get|put|post|delete|options|head|patch|trace)\\b/) || [])[1],
    block.querySelector('.opblock-summary-path')?.dataset.path,
])"""


def _scroll_through(page, until=None):
    """Scroll the page down half a screen at a time, as a reader does, and return every operation
    Swagger UI rendered on the way: with 150 tags and operations or more it renders only those near
    the screen (a virtualized list), so no single moment shows them all. Stops early once ``until``
    (a locator) is on the page."""
    seen = set()
    page.evaluate("window.scrollTo(0, 0)")
    last = -1
    for _ in range(5000):
        seen.update(tuple(op) for op in page.evaluate(_RENDERED_OPERATIONS))
        if until is not None and until.count():
            break
        position = page.evaluate("window.scrollY")
        if position == last:
            break
        last = position
        page.evaluate("window.scrollBy(0, window.innerHeight / 2)")
        page.wait_for_timeout(20)
    return seen


def test_swagger_ui_lists_operations_and_try_it_out_works(app, live_server, client):
    sync_playwright = _browser_or_skip()
    client.post("/api/customers", json={"name": "Browser Test", "email": "browser@example.com"})
    cookie = session_cookie(client)
    document = client.get("/api/openapi.json").get_json()
    documented = {(method, path) for path, item in document["paths"].items() for method in item
                  if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "session", "value": cookie, "url": live_server}])
            page = context.new_page()
            page.goto(f"{live_server}/api/docs", wait_until="networkidle")

            page.wait_for_selector(".opblock", timeout=15000)
            # Every documented operation renders somewhere on the page (none lost to a render error).
            assert len(documented) > 100
            assert _scroll_through(page) == documented

            operation = page.locator(".opblock-get").filter(
                has=page.locator('.opblock-summary-path[data-path="/api/customers"]')
            ).first
            _scroll_through(page, until=operation)
            operation.scroll_into_view_if_needed()
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status")
            status.first.wait_for(timeout=15000)
            assert status.first.inner_text().strip() == "200"
            body = operation.locator(".live-responses-table .response .highlight-code").first.inner_text()
            assert "browser@example.com" in body
        finally:
            browser.close()


def test_react_build_runs_under_the_content_security_policy(make_app, tmp_path):
    """A create-react-app style page: an inline runtime chunk plus a bundled script, both must run."""
    sync_playwright = _browser_or_skip()
    (tmp_path / "static" / "js").mkdir(parents=True)
    (tmp_path / "index.html").write_text(
        "<!doctype html><html><body><div id=root></div>"
        "<script>window.__runtimeLoaded = true;</script>"
        '<script src="/static/js/main.js"></script></body></html>'
    )
    (tmp_path / "static" / "js" / "main.js").write_text(
        "document.getElementById('root').textContent = window.__runtimeLoaded ? 'app ran' : 'no runtime';"
        "fetch('/api/auth/status').then(r => r.json()).then(s => { document.title = 'auth:' + s.isAuthenticated; });"
    )
    app = make_app(FRONTEND_DIR=str(tmp_path))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    violations = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.on("console", lambda msg: violations.append(msg.text)
                        if "Content Security Policy" in msg.text else None)
                page.goto(f"{base}/home/audience", wait_until="networkidle")
                assert page.locator("#root").inner_text() == "app ran"
                page.wait_for_function("document.title === 'auth:false'", timeout=10000)
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert violations == []


@pytest.fixture
def other_origin():
    """A page on another origin (another port), like a frontend deployed apart from the API."""
    from werkzeug.wrappers import Response

    page = "<!doctype html><title>frontend</title><p>frontend</p>"
    server = make_server("127.0.0.1", 0, lambda environ, start: Response(page, mimetype="text/html")(
        environ, start), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.parametrize("allowed", [True, False])
def test_a_frontend_on_another_origin_calls_the_api_from_a_real_browser(make_app, other_origin, allowed):
    sync_playwright = _browser_or_skip()
    api = make_app(CORS_ORIGINS=[other_origin] if allowed else [])
    session = signed_in(api, make_user(MARKETER, email="frontend@example.com"))
    key = session.post("/api/api-keys", json={"name": "frontend"}).get_json()["key"]
    server = make_server("127.0.0.1", 0, api, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    script = """async ([url, key]) => {
        try {
            const r = await fetch(url, {method: "POST", credentials: "include", headers: {
                "Authorization": "Bearer " + key, "Content-Type": "application/json"},
                body: JSON.stringify({name: "Cross Origin", email: "cross@example.com"})});
            return {status: r.status, body: await r.json()};
        } catch (e) { return {error: String(e)}; }
    }"""
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(other_origin)
                result = page.evaluate(script, [f"{base}/api/customers", key])
            finally:
                browser.close()
    finally:
        server.shutdown()
    if allowed:  # the preflight passed without credentials, then the real request with the key
        assert result.get("status") == 201, result
        assert result["body"]["email"] == "cross@example.com"
    else:  # the browser refuses to let the page read (or send) it
        assert "error" in result, result
