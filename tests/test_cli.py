"""The flask commands as an operator runs them: a separate process on the server's database."""
import re

import pytest

from models import Customer, Order
from models.roles import ADMIN
from tests.factories import make_user
from tests.processes import base_env, flask_command


def test_embedded_mode_says_why_the_command_sees_no_data():
    result = flask_command("create-api-key", "--email", "ada@example.com", "--name", "x", env=base_env())
    assert result.returncode != 0
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note: MONGO_URI is not set")]
    assert len(notes) == 1 and "cannot see a running server's data" in notes[0]
    assert "User with email ada@example.com not found" in result.stderr


@pytest.mark.parametrize("command", [["create-api-key", "--email", "a@b.c", "--name", "x"],
                                     ["seed-demo", "--customers", "1"], ["export-postman"], ["--help"]])
def test_no_command_prints_a_development_admin_key(command):
    result = flask_command(*command, env=base_env(APP_ENV="development"))
    assert "development admin API key" not in result.stdout + result.stderr
    assert "crm_" not in result.stderr


@pytest.mark.own_processes
def test_commands_share_the_servers_database(make_app, mongo_standin):
    database = mongo_standin()
    uri = database.uri("crm_cli_test")
    app = make_app(MONGO_URI=uri)  # this process plays the server
    make_user(ADMIN, email="ops@example.com")
    env = base_env(MONGO_URI=uri)

    created = flask_command("create-api-key", "--email", "ops@example.com", "--name", "cron", env=env)
    assert created.returncode == 0, created.stderr
    assert "Note:" not in created.stderr
    key = created.stdout.strip().splitlines()[-1]
    me = app.test_client().get("/api/auth/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.get_json()["email"] == "ops@example.com"

    seeded = flask_command("seed-demo", "--customers", "120", "--seed", "7", env=env)
    assert seeded.returncode == 0, seeded.stderr
    customers, orders = map(int, re.search(r"Added (\d+) customers and (\d+) orders", seeded.stdout).groups())
    assert customers == 120 == Customer.objects.count() and orders == Order.objects.count() > 0
    # each customer's totals follow its orders, as the API keeps them
    for customer in Customer.objects:
        mine = list(Order.objects(customer_id=customer.pk))
        assert customer.num_visits == len(mine)
        assert customer.total_spend == pytest.approx(sum(o.amount for o in mine))
        assert customer.last_visit_date == max((o.date for o in mine), default=None)
    again = flask_command("seed-demo", "--customers", "5", env=env)  # numbered on: no collision
    assert again.returncode == 0 and Customer.objects.count() == 125
