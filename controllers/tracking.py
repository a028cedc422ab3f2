"""Opens and clicks (the engine records them: :mod:`engine.tracking`); unknown tokens are 404."""
import engine
from errors import ApiError

UNKNOWN = "This link is not valid"


def record_open(token, method, agent, address):
    """Record an open; 404 when the token is not a valid one for an existing delivery."""
    if engine.track_open(token, method, agent, address) is None:
        raise ApiError(404, UNKNOWN)


def record_click(token, method, agent, address):
    """Record a click; where it goes, or 404 (nothing recorded)."""
    target = engine.track_click(token, method, agent, address)
    if target is None:
        raise ApiError(404, UNKNOWN)
    return target
