"""The example of bindings/python/README.md runs as written."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]  # tests/python/test_readme.py
README = ROOT / "bindings" / "python" / "README.md"


def test_readme_example():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has a python example"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})


ROOT_README = ROOT / "README.md"


def test_root_readme_python_example(tmp_path, monkeypatch):
    """The Python example in the repository's README (it writes under /tmp/store: run it in a
    temporary directory by rewriting that path)."""
    text = ROOT_README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the root README has a python example"
    for code in blocks:
        code = code.replace('"/tmp/store"', repr(str(tmp_path / "store")))
        exec(compile(code, str(ROOT_README), "exec"), {"__name__": "readme"})
