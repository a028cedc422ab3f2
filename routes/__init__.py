"""Blueprint registration: each resource under ``/api/...`` and under the seed's unprefixed alias."""
from routes import auth, campaigns, customers, orders

BLUEPRINTS = (
    (auth.bp, "auth"),
    (customers.bp, "customers"),
    (orders.bp, "orders"),
    (campaigns.bp, "campaigns"),
)


def register_blueprints(app):
    """Mount every Blueprint at ``/api/<name>`` and at the legacy alias ``/<name>``."""
    for blueprint, prefix in BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=f"/api/{prefix}")
        app.register_blueprint(blueprint, url_prefix=f"/{prefix}", name=f"legacy_{blueprint.name}")
