"""Roles, from least to most privileged: data the documents store (users, API keys), so they live with
the models; the access policy (``security/``) reads them."""
VIEWER = "viewer"
MARKETER = "marketer"
ADMIN = "admin"
ROLES = (VIEWER, MARKETER, ADMIN)
RANK = {role: rank for rank, role in enumerate(ROLES)}


def at_least(role, required):
    """True when ``role`` grants everything ``required`` does."""
    return RANK.get(role, -1) >= RANK[required]


def lower(first, second):
    """The less privileged of two roles."""
    return first if RANK[first] <= RANK[second] else second
