"""Pause latency: from the pause request to the last message the engine hands to the vendor.

A campaign paced at 1,000 messages per second runs on the in-process engine (embedded store, the
simulated vendor); once it is sending steadily, ``pause`` is requested and the time of every later
hand-off is noted. The promise is "within ``ENGINE_CONTROL_CHECK_S`` or one message, whichever is
later", so the figure is reported as a ratio to that bound (goal ≤ 1), median of ``rounds``.
"""
import random
import statistics
import time


def measure(rounds=10, rate=1000, recipients=3000):
    """``{"latencies": [...], "bound_s": ..., "rate": ...}``."""
    import mongoengine

    import engine
    from app import create_app
    from models import Campaign, Customer

    app = create_app({
        "APP_ENV": "testing", "TESTING": True, "LOG_LEVEL": "WARNING", "MONGO_DB": "crm_bench_pause",
        "VENDOR_RECEIPTS": False, "SCHEDULER_ENABLED": False, "RATELIMIT_ENABLED": False,
    })
    latencies = []
    with app.app_context():
        db = mongoengine.get_db()
        db.client.drop_database(db.name)
        Customer._get_collection().insert_many(
            [{"name": f"Customer {i}", "email": f"c{i}@example.com"} for i in range(recipients)])
        vendor = engine.vendor(app)
        handed = []
        original = vendor.send

        def timed_send(message):
            handed.append(time.monotonic())
            return original(message)

        vendor.send = timed_send
        rng = random.Random(12)
        for _ in range(rounds):
            campaign = Campaign(name="Pause", message="Hi", rules={"op": "AND", "rules": []},
                                messages_per_second=rate).save()
            handed.clear()
            engine.start(campaign.pk)
            # steady sending for a while, then pause at a point spread over the check interval
            until = int(rate * (0.3 + rng.random() * app.config["ENGINE_CONTROL_CHECK_S"]))
            while len(handed) < until:
                time.sleep(0.001)
            requested = time.monotonic()
            engine.pause(campaign.pk)
            engine.wait_idle(app, timeout=30)
            latencies.append(max(0.0, handed[-1] - requested))
            engine.cancel(campaign.pk)
        engine.stop(app, timeout=30)
        db.client.drop_database(db.name)
    return {"latencies": latencies, "bound_s": app.config["ENGINE_CONTROL_CHECK_S"], "rate": rate}


def report(result):
    """Print the median and every round."""
    median = statistics.median(result["latencies"])
    print(f"pause at {result['rate']:,} msgs/s: median {median * 1000:.0f} ms from the request to the last"
          f" hand-off (bound ENGINE_CONTROL_CHECK_S = {result['bound_s'] * 1000:.0f} ms) | ratio"
          f" {median / result['bound_s']:.2f} (goal <= 1); all: "
          + ", ".join(f"{x * 1000:.0f}" for x in result["latencies"]) + " ms")
    return median / result["bound_s"]
