"""What tests assert with: documents written, error bodies, URL parameters."""
from urllib.parse import parse_qs, urlparse

from models import Customer, Order


def counts():
    """Documents per collection, to assert that a rejected request wrote nothing."""
    return {
        "customers": Customer.objects.count(),
        "orders": Order.objects.count(),
    }


def query_params(url):
    """The query parameters of a URL as a flat dict."""
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def error_of(response):
    """The error body without its request id, after checking that id matches the response header."""
    body = dict(response.get_json())
    assert body.pop("requestId") == response.headers["X-Request-ID"]
    return body
