"""The configuration is one declared table (config.SETTINGS): the README's table and .env.example are
generated from it, every key the app reads comes from it, and the three cannot drift apart."""
import ast
import pathlib
import re

import config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_env_example_is_generated_from_the_table():
    assert (ROOT / ".env.example").read_text() == config.env_example(), "run: python config.py --write"


def test_readme_table_is_generated_from_the_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split(config.README_START, 1)[1].split(config.README_END, 1)[0]
    assert table.strip() == config.readme_table().strip(), "run: python config.py --write"


def test_every_setting_is_read_and_documented_once():
    names = [setting.name for setting in config.SETTINGS]
    assert len(names) == len(set(names))
    built = config.from_env({})
    for setting in config.SETTINGS:
        assert (setting.key or setting.name) in built, setting.name
        assert setting.help and setting.group, setting.name
    example = (ROOT / ".env.example").read_text()
    assert set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, re.M)) == set(names)


def test_no_module_reads_the_environment_around_the_table():
    """Settings come from the table: no other module of the app reads os.environ / os.getenv for one."""
    allowed = {"config.py", "gunicorn.conf.py", "wsgi.py", "worker.py"}  # entry points read their own
    offenders = []
    packages = ("apidocs", "controllers", "engine", "models", "routes", "schemas", "security", "segments", "services")
    for path in [*ROOT.glob("*.py"), *(p for package in packages for p in (ROOT / package).rglob("*.py"))]:
        relative = path.relative_to(ROOT)
        if str(relative) in allowed:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(str(relative))
    assert not offenders, offenders


def test_a_setting_kind_is_applied(monkeypatch):
    built = config.from_env({"ADMIN_EMAILS": " A@B.com ,c@d.com", "ALLOWED_EMAIL_DOMAINS": "@Shop.COM",
                             "FRONTEND_URL": "https://crm.example/", "MAX_IMPORT_MB": "2.5",
                             "IMPORT_CHUNK_ROWS": "10.0", "SESSION_SECRET": "  ", "SECRET_KEY": "k"})
    assert built["ADMIN_EMAILS"] == ["a@b.com", "c@d.com"] and built["ALLOWED_EMAIL_DOMAINS"] == ["shop.com"]
    assert built["FRONTEND_URL"] == "https://crm.example" and built["SESSION_COOKIE_SECURE"] is True
    assert built["MAX_IMPORT_MB"] == 2.5 and built["IMPORT_CHUNK_ROWS"] == 10
    assert built["SECRET_KEY"] == "k"  # an empty SESSION_SECRET falls through to its alias
