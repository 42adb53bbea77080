"""linking/README.md lists every module and every setting; the package imports no api code."""

import ast
from pathlib import Path

from linking.settings import LinkSettings, describe_settings

ROOT = Path(__file__).resolve().parents[2] / "linking"


def test_readme_lists_every_module_and_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for module in sorted(ROOT.glob("*.py")):
        if module.name != "__init__.py":
            assert f"`{module.name}`" in readme, module.name
    for row in describe_settings():
        assert f"`{row['name']}`" in readme, row["name"]
        assert row["help"]


def test_linking_depends_only_on_ner_and_index():
    for module in ROOT.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("api"), f"{module.name} imports {name}"


def test_settings_validate():
    import pytest

    with pytest.raises(ValueError, match="vector_kind"):
        LinkSettings(vector_kind="cls")
    with pytest.raises(ValueError, match="coref_threshold"):
        LinkSettings(coref_threshold=1.5)
