"""RFM full pass at scale: ``./scripts/bench.sh rfm`` (sizes: ``BENCH_RFM``, default 10,000 and 50,000).

On the MongoDB stand-in, for each size: seed the customers (7 in 10 with orders), run the pass, and,
as the same-run baseline, one ``update_many`` setting a field on every customer who ordered (one
write each, the least any pass can do). The pass writes each of them four times and reads the cuts
first, so its ratio (baseline / pass) is about 1/4 at best; what the figures show is that the cost
per customer stays flat as the shop grows (linear), and the absolute time for the size.
"""
import os
import random
import time

from bench import print_growth


def _seed(collection, n, rng):
    from datetime import datetime, timedelta

    start, batch = datetime(2024, 1, 1), []
    for i in range(n):
        orders = 0 if rng.random() < 0.3 else 1 + int(rng.paretovariate(1.5))
        doc = {"name": f"C{i}", "email": f"c{i}@example.com", "numVisits": orders,
               "totalSpend": round(orders * rng.uniform(5, 200), 2), "tags": []}
        if orders:
            doc["lastVisitDate"] = start + timedelta(minutes=rng.randrange(0, 700 * 24 * 60))
        batch.append(doc)
        if len(batch) == 5000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)


def measure(sizes):
    from bench.__main__ import standin_app

    rows = []
    with standin_app("crm_bench_rfm") as (app, db):
        from engine import rfm
        from models import Customer

        for n in sizes:
            db.client.drop_database(db.name)
            Customer.ensure_indexes()
            _seed(Customer._get_collection(), n, random.Random(n))
            ordered = Customer._get_collection().count_documents(rfm.ORDERED)
            started = time.perf_counter()
            Customer._get_collection().update_many(rfm.ORDERED, {"$set": {"benchTouched": 1}})
            base = time.perf_counter() - started
            started = time.perf_counter()
            rfm.full_pass()
            took = time.perf_counter() - started
            rows.append({"n": n, "ordered": ordered, "pass_s": took, "base_s": base,
                         "segments": rfm.summary()["segments"]})
    return rows


def report(rows):
    print("== RFM full pass on the MongoDB stand-in: one update_many per customer who ordered / the pass")
    for row in rows:
        per = row["pass_s"] / row["ordered"] * 1e6
        print(f"n={row['n']:>8,} ({row['ordered']:,} ordered): pass {row['pass_s']:.2f}s ({per:,.0f} µs per "
              f"customer) | one write each {row['base_s']:.2f}s | ratio {row['base_s'] / row['pass_s']:.2f}"
              f" | segments {row['segments']}")
    print_growth(rows, "pass_s", "ordered")


def main():
    sizes = [int(x) for x in os.environ.get("BENCH_RFM", "10000,50000").split(",") if x.strip()]
    report(measure(sizes))
