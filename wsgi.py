"""WSGI entry point: ``gunicorn wsgi:app``."""
from app import create_app, start_web

app = start_web(create_app())
