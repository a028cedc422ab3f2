"""Property-based run of the whole API against its own OpenAPI document (schemathesis).

Every operation gets generated valid and invalid requests, signed in as a staff user. Any 5xx, an
undocumented status code or content type, or a body that does not match the documented schema fails.
Each operation's Hypothesis strategy is run directly (schemathesis's pytest plugin does not support
pytest 9 yet); examples are derandomized so the run is the same every time.
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.roles import ADMIN
from tests.factories import make_user, session_cookie, signed_in

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}
# The Swagger UI page and its assets (HTML/JS, not API responses), and logout, which would revoke
# the session this run uses (test_auth and test_security cover it).
SKIPPED_PATHS = ("/api/docs", "/api/auth/logout", "/auth/logout")
BROWSER_HEADERS = {"Origin": "http://localhost"}  # as a browser on this site sends


@pytest.fixture
def app(make_app, gemini):
    """Rate limits off (their time windows would make replayed examples flaky; tested elsewhere) and
    the assistant configured against the Gemini stand-in, so every 5xx would be a real failure."""
    return make_app(RATELIMIT_ENABLED=False, GEMINI_API_KEY="fuzz-key", GEMINI_API_ENDPOINT=gemini.url)


@pytest.fixture
def session_cookies(app):
    """An admin's session cookie (schemathesis's WSGI transport needs ``cookies=``), so every
    operation is reachable; the role matrix is tested in test_security."""
    return {"session": session_cookie(signed_in(app, make_user(ADMIN, email="st@example.com")))}


def _operations(app):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(SKIPPED_PATHS):
            yield operation


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
def test_api_conforms_to_its_own_spec(app, session_cookies, mode):
    operations = list(_operations(app))
    assert len(operations) > 30
    failures = []
    statuses = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            try:
                response = case.call_and_validate(
                    cookies=session_cookies, headers=BROWSER_HEADERS, checks=CHECKS
                )
                statuses.setdefault(operation.label, set()).add(response.status_code)
            except BaseExceptionGroup as group:
                # schemathesis reports failures as a BaseExceptionGroup, which Hypothesis does not
                # count as a failing example: turn it into one.
                raise AssertionError(str(group)) from None

        try:
            run()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid request to make.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.POSITIVE:
        # The run really was signed in: only the OAuth callback and the signed webhook may answer 401.
        unauthorized = [op for op, seen in statuses.items()
                        if 401 in seen and "callback" not in op and "delivery-receipts" not in op]
        assert not unauthorized, unauthorized
        assert any(200 <= code < 300 for seen in statuses.values() for code in seen)
