"""The dependency rule, read from the source: routes → controllers → (engine, services) →
schemas/models → leaves; nothing imports a layer above it."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ABOVE_THE_ENGINE = ("controllers", "routes", "app", "wsgi", "worker", "security", "apidocs")


def imported_modules(path):
    """Every module a file imports (absolute names), at any depth in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "engine").glob("*.py")), ids=lambda p: p.name)
def test_the_engine_imports_nothing_above_it(path):
    above = {name for name in imported_modules(path) if name.split(".")[0] in ABOVE_THE_ENGINE}
    assert not above, f"{path.name} imports {sorted(above)}"


def test_controllers_leave_delivery_records_and_claims_to_the_engine():
    for path in sorted((ROOT / "controllers").rglob("*.py")):
        source = path.read_text()
        for model in ("Delivery._get_collection", "BatchClaim._get_collection"):
            assert model not in source, f"{path.relative_to(ROOT)} uses {model}: that belongs in engine/store.py"


PROJECT = ("app", "wsgi", "worker", "config", "metrics", "errors", "logs", "extensions", "apidocs", "routes", "controllers",
           "engine", "migrations", "services", "security", "schemas", "models", "segments", "dates", "bench", "tests")
# What each leaf package may import of the project (everything else of it is above the leaf).
LEAVES = {"models": ("models",), "segments": ("segments", "dates"), "dates": (), "metrics": ()}


@pytest.mark.parametrize("package", sorted(LEAVES))
def test_leaves_import_nothing_above_them(package):
    paths = [ROOT / f"{package}.py"] if (ROOT / f"{package}.py").exists() else sorted((ROOT / package).rglob("*.py"))
    for path in paths:
        project = {name for name in imported_modules(path) if name.split(".")[0] in PROJECT}
        above = {name for name in project if name.split(".")[0] not in LEAVES[package]}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


# The layers, bottom up: a module imports only from its own package or from a lower layer, so no
# import goes up and there is no cycle between packages. (The README's Architecture section draws it.)
LAYERS = (
    ("dates", "models", "config", "logs", "extensions", "metrics"),
    ("segments",),
    ("schemas",),
    ("errors",),
    ("services", "security"),
    ("engine", "migrations"),
    ("controllers",),
    ("apidocs",),
    ("routes",),
    ("app",),
    ("wsgi", "worker"),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def _project_sources():
    for package in RANK:
        single = ROOT / f"{package}.py"
        yield from [single] if single.exists() else sorted((ROOT / package).rglob("*.py"))


def test_every_package_has_a_layer():
    assert set(PROJECT) - {"bench", "tests"} == set(RANK)


@pytest.mark.parametrize("path", list(_project_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_layer_above_its_own(path):
    own = path.relative_to(ROOT).parts[0].removesuffix(".py")
    upward = sorted(name for name in imported_modules(path)
                    if name.split(".")[0] in RANK and name.split(".")[0] != own
                    and RANK[name.split(".")[0]] >= RANK[own])
    assert not upward, f"{path.relative_to(ROOT)} ({own}, layer {RANK[own]}) imports {upward}"


@pytest.mark.parametrize("path", sorted((ROOT / "controllers").rglob("*.py")), ids=lambda p: p.name)
def test_controllers_never_read_the_request(path):
    """Controllers take validated data; the routes read the request (headers, body, files) for them."""
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "flask"
             for alias in node.names}
    assert not names & {"request", "g", "session", "make_response"}, f"{path.name} imports {sorted(names)}"
