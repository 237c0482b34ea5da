"""The Python example of the README (section "Python") runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_python_example_runs():
    blocks = python_blocks()
    assert blocks, "the README's Python section has no ```python block"
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # The example's own asserts ran; and it did derive something.
    assert "md" in namespace
