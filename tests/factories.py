"""Test data and clients: users, signed-in clients, app configuration (fixtures build on these)."""
import time

from models import User
from models.roles import MARKETER, VIEWER
from security.sessions import CREATED, SEEN
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET

TEST_DB = "crm_test"


def base_config(oidc_provider, **overrides):
    """Test configuration: the stand-in provider, a fixed secret, a _test database."""
    config = {
        "TESTING": True,
        "APP_ENV": "testing",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "MONGO_DB": TEST_DB,
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_DISCOVERY_URL": oidc_provider.discovery_url,
        "FRONTEND_URL": "http://localhost:5000",
        "SESSION_COOKIE_SECURE": False,
        "LOGIN_DISABLED": False,
        "FRONTEND_DIR": None,
        "CORS_ORIGINS": [],
        "ADMIN_EMAILS": [],
        "ALLOWED_EMAIL_DOMAINS": [],
        "DEFAULT_ROLE": VIEWER,
        "SESSION_REDIS_URL": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        "LOG_FORMAT": "json",
    }
    config.update(overrides)
    return config


def make_user(role=MARKETER, email=None, **fields):
    """Store a staff user with ``role``."""
    email = email or f"{role}-{User.objects.count()}@example.com"
    return User(google_id=f"sub-{email}", email=email, display_name=email, role=role, **fields).save()


def signed_in(app, user):
    """A client with a fresh server-side session for ``user`` (test_auth covers the real sign-in)."""
    test_client = app.test_client()
    with test_client.session_transaction() as session:
        session["_user_id"] = str(user.pk)
        session["_fresh"] = True
        session[CREATED] = session[SEEN] = time.time()
    return test_client


def session_cookie(test_client):
    """The session cookie value a signed-in test client holds."""
    return test_client.get_cookie("session").value


def seed_customers(rows):
    """Store customers given as the API shows them (``{"name", "email", "totalSpend", ...}``) through
    the model, with its defaults and validation, in one insert; returns ``rows``."""
    from models import Customer
    from schemas.customer import CustomerOut

    attribute = {field.data_key: name for name, field in CustomerOut().fields.items()}  # the API's names
    Customer.objects.insert([Customer(**{attribute[key]: value for key, value in row.items()})
                             for row in rows], load_bulk=False)
    return rows


def people_shop(make_app, people, **config):
    """A marketer's client on an app (``config``) holding ``people`` customers ``Person i`` <pi@shop.com>."""
    app = make_app(**config)
    seed_customers([{"name": f"Person {i}", "email": f"p{i}@shop.com"} for i in range(people)])
    return signed_in(app, make_user())
