"""The example of bindings/python/README.md runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has a python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
