"""Load through the real server (loopback only, bounded in count and time): gunicorn on the MongoDB
stand-in, many concurrent keep-alive clients. Nothing lost, nothing counted twice, no 5xx."""
import random
import statistics
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import requests

from models import Campaign, Customer, Delivery, Order
from models.roles import ADMIN
from tests.factories import make_user
from tests.processes import Gunicorn, base_env, flask_command

pytestmark = pytest.mark.own_processes


@pytest.fixture
def server(make_app, mongo_standin, tmp_path):
    """gunicorn (2 workers × 8 threads) on a stand-in MongoDB this process also reads; an admin key."""
    database = mongo_standin()
    uri = database.uri("crm_load_test")
    make_app(MONGO_URI=uri, MONGO_TIMEOUT_MS=60000)  # this process checks what the server stored
    make_user(ADMIN, email="ops@example.com")
    # the stand-in serves one operation at a time: under this load a request may queue for seconds
    env = base_env(MONGO_URI=uri, APP_ENV="development", RATELIMIT_ENABLED="false", LOG_LEVEL="WARNING",
                   MONGO_TIMEOUT_MS=60000, SESSION_SECRET="load-test-secret-" + "x" * 40,
                   VENDOR_RECEIPTS="false")
    created = flask_command("create-api-key", "--email", "ops@example.com", "--name", "load", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    web = Gunicorn(env, tmp_path, workers=2, threads=8).start()
    yield SimpleNamespace(base=web.base, auth={"Authorization": f"Bearer {key}"}, env=env, web=web)
    web.stop()


def hammer(clients, seconds, request):
    """``clients`` threads, each with its own keep-alive session, calling ``request(session, rng)``
    until ``seconds`` have passed; returns ``[(status, latency, result)]``."""
    results, lock, stop = [], threading.Lock(), time.monotonic() + seconds

    def client(number):
        rng, session, mine = random.Random(number), requests.Session(), []
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                status, result = request(session, rng)
            except requests.RequestException as exc:
                status, result = type(exc).__name__, None
            mine.append((status, time.monotonic() - started, result))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_two_hundred_clients_ordering_for_twenty_seconds_lose_and_double_nothing(server):
    base, auth = server.base, server.auth
    customers = [requests.post(f"{base}/api/customers", headers=auth,
                               json={"name": f"Load {i}", "email": f"load{i}@example.com"}).json()["_id"]
                 for i in range(20)]

    def order(session, rng):
        customer, cents = rng.choice(customers), rng.randint(1, 100_000)
        response = session.post(f"{base}/api/orders", headers=auth, timeout=120,
                                json={"customerId": customer, "amount": cents / 100})
        created = response.status_code == 201
        return response.status_code, (response.json()["_id"], customer, cents) if created else None

    results = hammer(200, 20, order)
    statuses = Counter(status for status, _, _ in results)
    latencies = [latency for _, latency, _ in results]
    print(f"\n200 clients, 20 s: {len(results)} orders ({len(results) / 20:.0f}/s), statuses {dict(statuses)}, "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms")
    assert set(statuses) == {201}, statuses  # no 5xx, no refusal, no dropped connection
    created = [result for _, _, result in results]
    ids = [order_id for order_id, _, _ in created]
    assert len(set(ids)) == len(ids) == Order.objects.count()  # every 201 stored, once
    for customer_id in customers:
        mine = [cents for _, customer, cents in created if customer == customer_id]
        stored = Customer.objects.get(pk=customer_id)
        assert stored.num_visits == len(mine) == Order.objects(customer_id=customer_id).count()
        assert round(stored.total_spend * 100) == sum(mine)  # the totals equal the sum of the orders


def test_mixed_reads_and_writes_while_a_campaign_dispatches(server):
    base, auth = server.base, server.auth
    seeded = flask_command("seed-demo", "--customers", "1500", "--seed", "3", env=server.env)
    assert seeded.returncode == 0, seeded.stderr
    campaign = requests.post(f"{base}/api/campaigns", headers=auth, json={
        "name": "During load", "message": "Hi {{firstName}}", "rules": [], "messagesPerSecond": 300}).json()
    assert requests.post(f"{base}/api/campaigns/{campaign['_id']}/send", headers=auth).status_code == 202
    customer_ids = [c["_id"] for c in requests.get(f"{base}/api/customers?per_page=100", headers=auth).json()["items"]]

    def mixed(session, rng):
        pick = rng.random()
        if pick < 0.4:
            response = session.get(f"{base}/api/customers?per_page=50&page={rng.randint(1, 30)}", headers=auth)
        elif pick < 0.6:
            response = session.get(f"{base}/api/campaigns/{campaign['_id']}", headers=auth)
        elif pick < 0.8:
            response = session.post(f"{base}/api/orders", headers=auth,
                                    json={"customerId": rng.choice(customer_ids), "amount": 9.99})
        else:
            response = session.get(f"{base}/api/orders?per_page=20", headers=auth)
        return response.status_code, None

    results = hammer(40, 8, mixed)
    statuses = Counter(status for status, _, _ in results)
    latencies = [latency for _, latency, _ in results]
    print(f"\n40 clients, 8 s during a dispatch: {len(results)} requests, statuses {dict(statuses)}, "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms")
    assert set(statuses) <= {200, 201}, statuses
    deadline = time.monotonic() + 120
    while Campaign.objects.get(pk=campaign["_id"]).status == "sending" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
    assert Delivery.objects(campaign_id=campaign["_id"], status="SENT").count() == 1500
