"""Command-line operations."""
import click
from flask.cli import with_appcontext

from controllers.api_keys import create_for_email
from errors import ApiError
from security import audit
from security.roles import ROLES


@click.command("create-api-key")
@click.option("--email", required=True, help="Email of an existing user (who has signed in once).")
@click.option("--name", required=True, help="What the key is for, e.g. 'postman'.")
@click.option("--role", type=click.Choice(ROLES), default=None, help="At most the user's role.")
@with_appcontext
def create_api_key(email, name, role):
    """Create an API key for a user and print it (shown only this once)."""
    try:
        document, key = create_for_email(email, name, role)
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    audit.record("api_key.create", via="cli", target_type="api_key", target_id=str(document.pk),
                 details={"email": email, "name": name, "role": document.role})
    click.echo(key)
