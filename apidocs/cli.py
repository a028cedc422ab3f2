"""``flask export-postman``: print the Postman v2.1 collection of this API."""
import json

import click
from flask import current_app
from flask.cli import with_appcontext

from apidocs.postman import to_postman
from apidocs.spec import current_spec


@click.command("export-postman")
@click.option("--base-url", default=None, help="Value of the {{baseUrl}} variable.")
@with_appcontext
def export_postman(base_url):
    """Print a Postman v2.1 collection generated from the OpenAPI document."""
    base = base_url or f"http://localhost:{current_app.config['PORT']}"
    click.echo(json.dumps(to_postman(current_spec(), base), indent=2))
