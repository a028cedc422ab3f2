"""CSV import benchmarks, each side in its own process on the same store (the stand-in over the wire
by default: the embedded store checks a unique index by scanning, so neither side gets far there).

- **rate**: rows persisted per second importing N customers from a CSV file (upload check, GridFS,
  the job's chunks of upserts) ÷ a raw ``insert_many`` (chunks of 1,000) of the same documents,
  built before the clock starts, into the same collection with the same indexes.
- **memory**: peak RSS of the importing process for a 10 MB and a 50 MB file (wide rows of about 900
  bytes, so the files are big without millions of rows); the goal is the same within 20 MB.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_csv(path, rows=None, megabytes=None):
    """A customers CSV: ``rows`` narrow rows, or wide rows (a 200-character name, a 200-character
    address, ten 48-character tags: about 900 bytes) up to ``megabytes``; returns the row count."""
    wide_tags = "|".join(f"tag-{t:02d}-" + "x" * 41 for t in range(10))
    domain = ".".join(["d" * 60] * 3) + ".example.com"
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("name,email,tags\n")
        while True:
            if rows is not None and count >= rows:
                break
            if megabytes is not None and out.tell() >= megabytes * 2**20:
                break
            if megabytes is None:
                out.write(f"Customer {count},c{count}@example.com,{'vip' if count % 10 == 0 else ''}\n")
            else:
                out.write(f"Customer {count} {'y' * 180},c{count}@{domain},{wide_tags}\n")
            count += 1
    return count


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(path, mode):
    """In a child process: ``import`` the file, or ``insert`` its documents raw; prints one JSON line."""
    import csv

    import mongoengine

    from bench.__main__ import _app
    from engine import imports
    from models import Customer, ImportJob
    from models.base import utcnow

    app = _app()
    with app.app_context():
        db = mongoengine.get_db()
        db.client.drop_database(db.name)
        Customer.ensure_indexes()
        ImportJob.ensure_indexes()
        if mode == "import":
            started = time.perf_counter()
            with open(path, "rb") as handle:
                file_id, size, delimiter, columns = imports.store_upload(
                    handle, os.path.basename(path), "customers", {}, 2**40)
            job = ImportJob(type="customers", filename="bench.csv", file_id=file_id, size=size,
                            delimiter=delimiter, columns=columns).save()
            status = imports.run_import(str(job.pk))
            elapsed = time.perf_counter() - started
            job.reload()
            assert status == "completed", (status, job.error)
            rows = job.counts["inserted"]
        else:
            now = utcnow()
            with open(path, encoding="utf-8", newline="") as handle:
                docs = [{"name": r["name"], "email": r["email"], "tags": [t for t in r["tags"].split("|") if t],
                         "totalSpend": 0.0, "numVisits": 0, "subscribed": True, "createdAt": now,
                         "updatedAt": now} for r in csv.DictReader(handle)]
            collection = Customer._get_collection()
            started = time.perf_counter()
            for offset in range(0, len(docs), 1000):
                collection.insert_many(docs[offset:offset + 1000], ordered=False)
            elapsed = time.perf_counter() - started
            rows = len(docs)
        stored = Customer._get_collection().count_documents({})
        db.client.drop_database(db.name)
    print(json.dumps({"mode": mode, "rows": rows, "stored": stored, "seconds": elapsed,
                      "rss_peak_mb": _peak_rss_mb(), "bytes": os.path.getsize(path)}))


def _child(path, mode, env):
    out = subprocess.run([sys.executable, "-m", "bench.imports", path, mode], cwd=ROOT, capture_output=True,
                         text=True, check=False, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(lines[-1])


def measure(env, rows, sizes_mb=(10, 50)):
    """The rate pair at ``rows`` rows and the peak RSS per file size; the stand-in is ``env``'s."""
    with tempfile.TemporaryDirectory() as tmp:
        narrow = os.path.join(tmp, "narrow.csv")
        write_csv(narrow, rows=rows)
        imported, inserted = _child(narrow, "import", env), _child(narrow, "insert", env)
        print(f"  import {imported}\n  insert {inserted}", flush=True)  # figures kept if a later step fails
        assert imported["stored"] == inserted["stored"] == rows, (imported, inserted)
        memory = []
        for megabytes in sizes_mb:
            wide = os.path.join(tmp, f"wide-{megabytes}.csv")
            count = write_csv(wide, megabytes=megabytes)
            result = _child(wide, "import", env)
            print(f"  {megabytes} MB: {result}", flush=True)
            assert result["stored"] == count, result
            memory.append({"mb": megabytes, "rows": count, **result})
    return {"rows": rows, "import": imported, "insert": inserted, "memory": memory}


def report(figures):
    """Print the figures; the rows for RESULTS.md."""
    n, imported, inserted = figures["rows"], figures["import"], figures["insert"]
    ratio = inserted["seconds"] / imported["seconds"]
    print(f"import {n:,} customers: {n / imported['seconds']:,.0f} rows/s ({imported['seconds']:.1f} s)"
          f" | raw insert_many {n / inserted['seconds']:,.0f} rows/s ({inserted['seconds']:.1f} s) | ratio {ratio:.3f}")
    for m in figures["memory"]:
        print(f"  {m['mb']} MB file ({m['rows']:,} wide rows): peak RSS {m['rss_peak_mb']:.1f} MB,"
              f" {m['rows'] / m['seconds']:,.0f} rows/s")
    small, big = figures["memory"][0], figures["memory"][-1]
    growth = big["rss_peak_mb"] - small["rss_peak_mb"]
    return [
        {"measure": f"CSV import, {n:,} customers, over the wire (stand-in)",
         "baseline": "raw `insert_many` of the same documents, same indexes", "goal": "≥ 0.4",
         "crm": f"{n / imported['seconds']:,.0f} rows/s", "base": f"{n / inserted['seconds']:,.0f} rows/s",
         "ratio": ratio},
        {"measure": f"CSV import peak RSS, {big['mb']} MB file vs {small['mb']} MB file (ratio: growth ÷ 20 MB)",
         "baseline": f"the {small['mb']} MB import", "goal": "≤ 1",
         "crm": f"{big['rss_peak_mb']:.0f} MB", "base": f"{small['rss_peak_mb']:.0f} MB",
         "ratio": max(growth, 0) / 20},
    ]


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    one(sys.argv[1], sys.argv[2])
