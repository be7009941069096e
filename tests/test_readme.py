"""README.md opens with the two commands; CI runs the second one verbatim."""

from __future__ import annotations

import re

from conftest import REPO


def _commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_readme_opens_with_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = text.index("```")
    assert text[:first_block].strip() == "# ragbook"
    demo, tests = _commands()
    assert "\n" not in demo and "\n" not in tests
    assert "torch==2.13.0" in demo and demo.endswith("ragbook demo")
    assert tests.endswith("pytest -ra")


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()
