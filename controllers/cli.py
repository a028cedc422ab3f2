"""Command-line operations (``flask <command>``), on the database the server uses."""
import functools

import click
from flask import current_app
from flask.cli import with_appcontext

from controllers.api_keys import create_for_email
from controllers.demo import seed_demo
from errors import ApiError
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
    with click.progressbar(length=customers, label="Customers", file=click.get_text_stream("stderr")) as bar:
        totals = seed_demo(customers, max_orders=max_orders, seed=seed, progress=bar.update)
    audit.record("demo.seed", via="cli", details=totals)
    click.echo(f"Added {totals['customers']} customers and {totals['orders']} orders.")
