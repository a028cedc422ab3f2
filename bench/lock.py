"""The cost of the embedded store's lock (models/embedded.py): the same read-only work with and without it.

    .venv/bin/python -m bench.lock

Four threads list customers (``GET /api/customers?perPage=50``, 2,000 customers, sorted by spend)
through the app, in alternating rounds with the lock and with it replaced by a no-op (safe here:
nothing writes); the ratio is requests per second with the lock divided by without it.
"""
import contextlib
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def measure(threads=4, requests_each=25, rounds=5):
    """``{"locked": [req/s per round], "unlocked": [...]}``."""
    from app import create_app
    from models import User, embedded
    from models.api_key import ApiKey, hash_key
    from models.roles import ADMIN
    from security.api_keys import new_key

    app = create_app({"APP_ENV": "testing", "TESTING": True, "LOG_LEVEL": "WARNING", "MONGO_DB": "crm_bench",
                      "SCHEDULER_ENABLED": False, "RATELIMIT_ENABLED": False})
    with app.app_context():
        from models import Customer

        Customer._get_collection().insert_many([{"name": f"C{i}", "email": f"c{i}@x.test", "totalSpend": float(i % 997)}
                                                for i in range(2000)])
        user = User(google_id="bench", email="bench@example.com", display_name="Bench", role=ADMIN).save()
        key, prefix = new_key()
        ApiKey(user_id=user.pk, name="bench", prefix=prefix, key_hash=hash_key(key), role=ADMIN).save()
    headers = {"Authorization": f"Bearer {key}"}
    lock = embedded.EMBEDDED_LOCK

    def one_round():
        def work():
            client = app.test_client()
            for _ in range(requests_each):
                assert client.get("/api/customers?perPage=50&sort=-totalSpend", headers=headers).status_code == 200

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return threads * requests_each / (time.perf_counter() - started)

    figures = {"locked": [], "unlocked": []}
    try:
        for _ in range(rounds):
            embedded.EMBEDDED_LOCK = lock
            figures["locked"].append(one_round())
            embedded.EMBEDDED_LOCK = contextlib.nullcontext()
            figures["unlocked"].append(one_round())
    finally:
        embedded.EMBEDDED_LOCK = lock
    return figures


def report(figures):
    """Print the figures; the RESULTS.md row."""
    locked, unlocked = statistics.median(figures["locked"]), statistics.median(figures["unlocked"])
    print(f"embedded store lock: {locked:.1f} req/s with it, {unlocked:.1f} without "
          f"(ratio {locked / unlocked:.2f}; rounds: {', '.join(f'{x:.1f}' for x in figures['locked'])} / "
          f"{', '.join(f'{x:.1f}' for x in figures['unlocked'])})")
    return {"measure": "customer list pages, 4 threads, 2,000 customers, with the embedded store's lock",
            "baseline": "the same with the lock replaced by a no-op (read-only work)", "goal": "≥ 0.8",
            "crm": f"{locked:.1f} req/s", "base": f"{unlocked:.1f} req/s", "ratio": locked / unlocked}


if __name__ == "__main__":
    report(measure())
