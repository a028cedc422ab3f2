"""The mutation audit (scripts/mutation_audit.py) stays runnable: every entry's original text occurs
exactly once in its file (code that moved on makes an entry that mutates nothing), and every test it
names exists. Running the mutations themselves takes over an hour: the script does that."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def entries():
    tree = ast.parse((ROOT / "scripts" / "mutation_audit.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MUTATIONS" for t in node.targets) \
                and isinstance(node.value, ast.List):
            return [ast.literal_eval(element) for element in node.value.elts]
    raise AssertionError("no MUTATIONS list")


ENTRIES = [entry for entry in entries() if not entry[0].startswith("SKIP")]


def test_the_audit_has_entries_with_unique_names():
    names = [entry[0] for entry in ENTRIES]
    assert len(names) > 100 and len(set(names)) == len(names)


@pytest.mark.parametrize("name, path, old, new, tests", ENTRIES, ids=[entry[0] for entry in ENTRIES])
def test_each_mutation_applies_once_and_names_existing_tests(name, path, old, new, tests):
    assert (ROOT / path).read_text().count(old) == 1, f"{path} no longer holds this entry's text once"
    assert old != new
    for test in tests:  # a file, or file::function
        file, _, function = test.partition("::")
        assert (ROOT / file).is_file(), test
        assert not function or f"def {function.split('[')[0]}(" in (ROOT / file).read_text(), test
