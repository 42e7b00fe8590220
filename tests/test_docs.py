"""Every code block in README.md and docs/ runs, so the documentation cannot rot.

Fenced blocks are read from each page in order:

- ```` ```python ```` blocks run in one namespace per page (later blocks see earlier names);
- ```` ```bash ```` blocks run line by line in one scratch folder per page (``steerlab`` is this
  environment's CLI), each line must exit 0;
- blocks marked ``no-run`` (```` ```bash no-run ````: installs, servers, minutes-long training,
  a GPU) are still checked: Python must compile, every ``steerlab`` command must name a real verb
  with real options and values of the right type (parsed by the CLI without running), every
  ``make`` target must exist, and other shell lines must parse.

Blocks of other languages (text, json, yaml, toml) are not code and are left alone.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    run: bool
    code: str


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        lang = m.group(1)
        if lang not in ("python", "bash"):
            continue
        out.append(Block(page, text[:m.start()].count("\n") + 1, lang, "no-run" not in m.group(2), m.group(3)))
    return out


def commands(code: str) -> list[str]:
    """Shell commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        cmd = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if cmd:
            out.append(cmd)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1",
            "STEERLAB_QUIET": "1", "TOKENIZERS_PARALLELISM": "false"}


def check_cli(cmd: str) -> None:
    """Parse a ``steerlab`` command line with the CLI's own parser (verbs, options, value types),
    without running it."""
    import typer

    from steerlab.cli.app import _register, app

    _register()
    args = shlex.split(cmd)[1:]
    command = typer.main.get_command(app)
    path = ["steerlab"]
    while hasattr(command, "get_command"):  # a group: parse its own options, then descend to the verb
        ctx = command.make_context(" ".join(path), list(args))  # raises on unknown options or bad values
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        if not rest:
            return  # the group runs by itself (e.g. ``steerlab eval --artifact ...``)
        sub = command.get_command(ctx, rest[0])  # type: ignore[attr-defined]
        assert sub is not None, f"{cmd!r}: no verb {rest[0]!r} under {' '.join(path)}"
        path.append(rest[0])
        command, args = sub, rest[1:]
    command.make_context(" ".join(path), list(args))


def check_static(block: Block) -> None:
    if block.lang == "python":
        compile(block.code, f"{block.page.name}:{block.line}", "exec")
        return
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for cmd in commands(block.code):
        first = shlex.split(cmd)[0]
        if first == "steerlab":
            check_cli(cmd)
        elif first == "make":
            for target in shlex.split(cmd)[1:]:
                assert target in targets, f"{cmd!r}: no make target {target}"
        else:
            subprocess.run(["bash", "-n", "-c", cmd], check=True)


def test_every_page_has_code_and_blocks_are_found() -> None:
    found = {p.relative_to(ROOT).as_posix(): len(blocks(p)) for p in PAGES}
    assert found["README.md"] >= 5 and sum(found.values()) >= 20, found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_run_blocks_are_valid(page: Path) -> None:
    for block in blocks(page):
        if not block.run:
            check_static(block)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runnable = [b for b in blocks(page) if b.run]
    if not runnable:
        return
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in runnable:
        where = f"{page.relative_to(ROOT)}:{block.line}"
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 - our own documentation
            continue
        for cmd in commands(block.code):
            done = subprocess.run(cmd, shell=True, cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, f"{where}: {cmd}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("cmd", ["steerlab generat -p hi", "steerlab generate --no-such-flag 1",
                                 "steerlab generate --max-new-tokens many",
                                 "steerlab train lm-steer --data x --out o --rank"])
def test_the_static_check_catches_a_stale_command(cmd: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any parse error will do
        check_cli(cmd)


def test_every_public_name_is_in_the_api_reference() -> None:
    """docs/index.md promises every public function is in the API reference: each name of
    ``steerlab.__all__`` is listed there under the module that defines it."""
    import inspect

    import steerlab

    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"^::: (\S+)\n    options:\n      members: \[([^\]]*)\]", reference, re.M))
    missing = []
    for name in steerlab.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(steerlab, name)
        module = obj.__module__ if inspect.isclass(obj) or inspect.isfunction(obj) else None  # values: anywhere
        listed = [m for m, members in blocks.items() if name in [x.strip() for x in members.split(",")]]
        if not listed or (module is not None and module not in listed):
            missing.append(f"{name} ({module})")
    assert not missing, f"not in docs/reference.md under their module: {missing}"
