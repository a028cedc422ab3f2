"""WSGI entry point: ``gunicorn wsgi:app``."""
import os

from app import create_app, start_web
from security.api_keys import DEV_KEY_HASH_ENV

# gunicorn's master minted the development key (gunicorn.conf.py): every worker accepts that one
app = start_web(create_app(), dev_key_hash=os.environ.get(DEV_KEY_HASH_ENV))
