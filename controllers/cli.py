"""Command-line operations (``flask <command>``), on the database the server uses."""
import functools
import os
import sys

import click
from bson import ObjectId
from flask import current_app
from flask.cli import with_appcontext

from controllers.api_keys import create_for_email
from controllers.demo import seed_demo
from controllers.imports import create_import
from engine import imports, rfm
from engine.reports import recount
from models import Campaign, ImportRowError
from models.import_job import TYPES
from schemas.import_job import ImportForm
from errors import ApiError
from migrations import HEAD
from migrations import runner as migrations
from security import audit
from models.roles import ROLES

EMBEDDED_NOTE = (
    "Note: MONGO_URI is not set, so this command runs on an embedded database of its own, empty and "
    "gone when it exits; it cannot see a running server's data. Set MONGO_URI to the server's "
    "MongoDB (in .env or the environment) and run it again."
)


def on_shared_database(command):
    """Run ``command`` in the app context, saying first when it cannot reach the server's data."""
    @functools.wraps(command)
    @with_appcontext
    def wrapper(*args, **kwargs):
        if not current_app.config.get("MONGO_URI"):
            click.echo(EMBEDDED_NOTE, err=True)
        return command(*args, **kwargs)

    return wrapper


@click.command("create-api-key")
@click.option("--email", required=True, help="Email of an existing user (who has signed in once).")
@click.option("--name", required=True, help="What the key is for, e.g. 'postman'.")
@click.option("--role", type=click.Choice(ROLES), default=None, help="At most the user's role.")
@on_shared_database
def create_api_key(email, name, role):
    """Create an API key for a user and print it (shown only this once)."""
    try:
        document, key = create_for_email(email, name, role)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    audit.record("api_key.create", via="cli", target_type="api_key", target_id=str(document.pk),
                 details={"email": email, "name": name, "role": document.role})
    click.echo(key)


@click.command("seed-demo")
@click.option("--customers", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="How many demo customers to add.")
@click.option("--max-orders", type=click.IntRange(0, 50), default=5, show_default=True,
              help="Each customer gets 0 to this many orders over the last year.")
@click.option("--seed", type=int, default=None, help="Repeatable data for the same seed.")
@on_shared_database
def seed_demo_command(customers, max_orders, seed):
    """Add realistic demo customers and their orders, in batches."""
    with click.progressbar(length=customers, label="Customers", file=sys.stderr) as bar:
        totals = seed_demo(customers, max_orders=max_orders, seed=seed, progress=bar.update)
    audit.record("demo.seed", via="cli", details=totals)
    click.echo(f"Added {totals['customers']} customers and {totals['orders']} orders.")


class _LocalFile:
    """A file on disk presented like an upload."""

    def __init__(self, handle, filename):
        self.stream, self.filename = handle, filename


@click.command("import")
@click.argument("kind", type=click.Choice(TYPES))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", default=None, help='JSON object: file column → field, e.g. \'{"E-Mail": "email"}\'.')
@click.option("--mode", type=click.Choice(("merge", "replace")), default="merge", show_default=True,
              help="customers: tags added (merge) or replaced.")
@on_shared_database
def import_command(kind, path, mapping, mode):
    """Import a CSV file of customers, orders or suppressed addresses (as POST /api/imports does)."""
    form = {"type": kind, "mode": mode, **({"mapping": mapping} if mapping else {})}
    max_bytes = int(current_app.config["MAX_IMPORT_MB"] * 1024 * 1024)
    try:
        with open(path, "rb") as handle:
            job = create_import(_LocalFile(handle, os.path.basename(path)), form, ImportForm(), max_bytes,
                                enqueue=False)
    except ApiError as exc:
        details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in (exc.errors or {}).items())
        raise click.ClickException(exc.message + (f" ({details})" if details else "")) from exc
    with click.progressbar(length=job.size, label="Importing", file=sys.stderr) as bar:
        def progress(_rows):
            job.reload("bytes_done")
            bar.update(job.bytes_done - bar.pos)

        status = imports.run_import(job.pk, progress=progress)
        bar.update(job.size - bar.pos)
    job.reload()
    audit.record("import.create", via="cli", target_type="import", target_id=str(job.pk),
                 details={"type": kind, "file": job.filename, **job.counts})
    counts = ", ".join(f"{value} {name}" for name, value in job.counts.items())
    click.echo(f"Import {job.pk} {status}: {counts}.")
    for error in ImportRowError.objects(job_id=job.pk).order_by("row", "id").limit(20):
        click.echo(f"  line {error.row}" + (f" {error.field}" if error.field else "") + f": {error.message}")
    if status != "completed":
        raise click.ClickException(job.error or f"The import ended {status}")


@click.group("db")
def db_group():
    """Data migrations: ``flask db upgrade`` applies the pending ones, ``flask db status`` lists them."""


@db_group.command("upgrade")
@click.option("--wait", "wait_s", type=click.IntRange(0, 3600), default=300, show_default=True,
              help="Seconds to wait for another upgrade that holds the lock.")
@on_shared_database
def db_upgrade(wait_s):
    """Apply the pending data migrations, in order (idempotent: nothing pending, nothing done)."""
    def report(migration, changed):
        counts = ", ".join(f"{value} {name}" for name, value in changed.items()) or "nothing to change"
        click.echo(f"{migration.version} {migration.name}: {counts}")

    try:
        applied = migrations.upgrade(wait_s=wait_s, report=report)
    except migrations.UpgradeBusy as exc:
        raise click.ClickException(str(exc)) from exc
    if applied:
        audit.record("db.upgrade", via="cli", details={"applied": [m.version for m in applied]})
    click.echo(f"Database at {HEAD}" + ("" if applied else " already: nothing to apply") + ".")


@db_group.command("status")
@click.option("--check", is_flag=True, help="Exit with status 1 when a migration is pending.")
@on_shared_database
def db_status(check):
    """List the data migrations: applied (when, what changed) or pending."""
    rows = migrations.status()
    for row in rows:
        if row["appliedAt"] is None:
            state = "pending"
        else:
            changed = ", ".join(f"{value} {name}" for name, value in (row["changed"] or {}).items())
            state = f"applied {row['appliedAt']:%Y-%m-%d %H:%M:%S}Z" + (f" ({changed})" if changed else "")
        if row.get("unknown"):
            state += " (not known to this code: the database was upgraded by a newer version)"
        click.echo(f"{row['version']}  {row['name']:<28} {state}")
    waiting = [row["version"] for row in rows if row["appliedAt"] is None]
    click.echo(f"{len(waiting)} pending: run `flask db upgrade`." if waiting else "Up to date.")
    if check and waiting:
        raise SystemExit(1)


@click.command("rfm")
@on_shared_database
def rfm_command():
    """Run the RFM pass now: score every customer who ordered and segment them (beat does it every
    RFM_INTERVAL_H hours)."""
    outcome = rfm.full_pass()
    counts = rfm.summary()["segments"]
    click.echo(f"RFM: {outcome['customers']} customers scored: "
               + ", ".join(f"{count} {name}" for name, count in counts.items()) + ".")


@click.command("recount-reports")
@click.argument("campaign_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every campaign, tallied or not.")
@on_shared_database
def recount_reports(campaign_ids, everything):
    """Rebuild campaigns' report tallies from their delivery records: the ones named, else every
    campaign made before tallies (or, with --all, every campaign). Run it while they are not sending
    and their tracking is quiet: what arrives during a campaign's rebuild may be missed."""
    if campaign_ids:
        campaigns = []
        for value in campaign_ids:
            found = Campaign.objects(pk=value).first() if ObjectId.is_valid(value) else None
            if found is None:
                raise click.ClickException(f"No campaign {value}")
            campaigns.append(found)
    else:
        campaigns = Campaign.objects() if everything else Campaign.objects(tallied__ne=True)
    count = 0
    for campaign in campaigns:
        documents = recount(campaign)
        count += 1
        click.echo(f"{campaign.pk} {campaign.name}: {documents} tally documents")
    click.echo(f"Recounted {count} campaign{'s' if count != 1 else ''}.")
