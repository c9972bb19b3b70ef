#!/usr/bin/env python3
"""Runs the console blocks of the docs and checks (or rewrites) their output.

Each ```console block holds `$ COMMAND` lines, each followed by what it prints.
The commands run in order with bash, stdout and stderr together as a terminal
shows them, in a sandbox per document: a fresh temp directory with a copy of the
repository's manifests/ and examples/, as if in a clone's root. The binary given
by --bin is first on PATH as `shipctl`; `cargo run -q -- ARGS` runs it too, and
`cargo install --path .` does nothing (it is already installed).

--check compares each block with what its commands print now and shows a
unified diff where they differ (exit 1); --write puts the new output in place.
Only what varies between runs is masked in the comparison: timestamps, measured
durations, lease holders (host:pid:nonce) and the sandbox's path; --write leaves
a block that differs only there as it is, and rewrites any other whole, so that
each block shows one real run.

An HTML comment just before a block (invisible when rendered) gives what the
script cannot infer, as words after `console:`:

  <!-- console: dir=empty -->          this block and the next ones of the
                                       document run in a new, empty directory;
  <!-- console: dir=examples/gated --> ... in a new copy of that directory;
  <!-- console: file=manifests/x.yaml --> the block (any language) is not run
                                       but written to that path in the sandbox;
  <!-- console: output-of CMD ARGS --> the block (any language) is the output
                                       of that command, run like a console line;
  <!-- console: SHIPCTL_ACTOR=bob -->  an environment variable for the block;
  <!-- console: skip (why) -->         the block is left alone: say why.

Blocks share the sandbox, its files and the ledger in it, in document order,
and each starts in the directory where the previous one ended. Commands run
with a fixed environment (USER=alice, NO_COLOR=1, TZ=UTC, nothing of the
caller's SHIPCTL_* variables), so the outputs are the same on every machine.

Usage: scripts/console-blocks.py (--check | --write) [--bin PATH] [FILE...]
(default FILEs: README.md examples/walkthrough.md; default binary:
target/debug/shipctl, built by `cargo build`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "examples/walkthrough.md"]
TIMEOUT = 300  # seconds per block

# What varies between runs, and only that.
MASKS = [
    # 2026-11-30 20:24:18, 2026-11-30T20:24:18.123Z
    (re.compile(r"\d{4}-\d\d-\d\d([ T])\d\d:\d\d:\d\d(\.\d+)?"), r"YYYY-MM-DD\1hh:mm:ss"),
    # measured: `(deployment 1, 0.3s)`, `failed after 0.0s`
    (re.compile(r"\b\d+\.\d+s\b"), "<duration>"),
    # measured: `ran 201ms`, `passed in 3ms`, `failed after 4ms`
    (re.compile(r"\b(ran|in|after) \d+ms\b"), r"\1 <duration>"),
    # measured: a verification's `try 1/3 (8ms)`
    (re.compile(r"\b(try \d+/\d+) \(\d+ms\)"), r"\1 (<duration>)"),
    # lease holders: host:pid:nonce
    (re.compile(r"[^\s:(]+:\d+:[0-9a-f]{8}\b"), "<holder>"),
    # the audit log's hashes (they cover dates and ids): whole, or their first 16 digits
    (re.compile(r"\b[0-9a-f]{16}(?:[0-9a-f]{48})?\b"), "<hash>"),
    # the sandbox
    (re.compile(r"/\S*console-blocks-[A-Za-z0-9_]+"), "<sandbox>"),
    # the ledger's random id
    (re.compile(r"\b[0-9a-f]{32}\b"), "<ledger-id>"),
    # keys made in the block: their fingerprints (signed approvals)
    (re.compile(r"SHA256:[A-Za-z0-9+/]{43}"), "SHA256:<fingerprint>"),
]

# bash, before a block's commands: `cargo` as the README uses it.
PRELUDE = r"""
cargo() {
  case "$1" in
    run) shift; while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
         [ "$#" -gt 0 ] && shift; shipctl "$@" ;;
    install) ;;
    *) echo "console-blocks: cannot run cargo $*" >&2; return 127 ;;
  esac
}
exec 2>&1
"""

DIRECTIVE = re.compile(r"^\s*<!--\s*console:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w-]*)")


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class Directive:
    dir: str | None = None
    file: str | None = None
    output_of: str | None = None
    skip: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def parse(text: str, where: str) -> Directive:
        d = Directive()
        rest = text
        while rest:
            word, _, after = rest.partition(" ")
            if word == "skip":
                d.skip = after.strip()
                if not (d.skip.startswith("(") and d.skip.endswith(")")):
                    raise Failure(f"{where}: `skip` needs its reason, in parentheses")
                return d
            if word == "output-of":
                d.output_of = after.strip()
                return d
            key, eq, value = word.partition("=")
            if not eq or not value:
                raise Failure(f"{where}: unknown console directive {word!r}")
            if key == "dir":
                d.dir = value
            elif key == "file":
                d.file = value
            elif re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
                d.env[key] = value
            else:
                raise Failure(f"{where}: unknown console directive {word!r}")
            rest = after.strip()
        return d


@dataclass
class Block:
    """A fenced block: lines[start:end] is its body, between its fences."""

    lang: str
    start: int
    end: int
    directive: Directive

    def body(self, lines: list[str]) -> list[str]:
        return lines[self.start : self.end]


class Failure(Exception):
    pass


def blocks(lines: list[str], name: str) -> list[Block]:
    """The blocks to run or use: console blocks, and blocks with a directive."""
    found = []
    i = 0
    pending: tuple[Directive, int] | None = None
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE.match(line)
        if m:
            pending = (Directive.parse(m.group(1), f"{name}:{i + 1}"), i)
            i += 1
            continue
        m = FENCE.match(line)
        if not m:
            if line.strip() and pending:
                raise Failure(f"{name}:{pending[1] + 1}: a console directive must come just before a block")
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        close = re.compile("^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        end = i + 1
        while end < len(lines) and not close.match(lines[end]):
            end += 1
        if end == len(lines):
            raise Failure(f"{name}:{i + 1}: this block is never closed")
        directive = pending[0] if pending else Directive()
        if lang == "console" or pending:
            found.append(Block(lang, i + 1, end, directive))
        pending = None
        i = end + 1
    return found


def commands(body: list[str], where: str) -> list[tuple[list[str], list[str]]]:
    """A console block as (command lines, output lines) pairs."""
    steps: list[tuple[list[str], list[str]]] = []
    continued = False
    for line in body:
        if continued:
            steps[-1][0].append(line)
        elif line.startswith("$ "):
            steps.append(([line], []))
        elif not steps:
            raise Failure(f"{where}: a console block starts with a `$ ` command line")
        else:
            steps[-1][1].append(line)
        continued = (continued or line.startswith("$ ")) and line.endswith("\\")
    return steps


class Sandbox:
    """A temp directory where one document's blocks run, and the binary."""

    def __init__(self, base: Path, bindir: Path, kind: str):
        self.root = Path(tempfile.mkdtemp(prefix="console-blocks-", dir=base))
        self.cwd = self.root
        self.bindir = bindir
        if kind == "empty":
            return
        sources = [ROOT / "manifests", ROOT / "examples"] if kind == "repo" else [ROOT / kind]
        for source in sources:
            if not source.is_dir():
                raise Failure(f"dir={kind}: {source} is not a directory")
            target = self.root / source.name if kind == "repo" else self.root
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "USER": "alice",
            "LOGNAME": "alice",
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "TZ": "UTC",
        }
        env.update(extra)
        return env

    def run(self, lines: list[str], env: dict[str, str], where: str) -> list[str]:
        """Runs each command in one bash, in order: what each printed."""
        mark = f"\x1econsole-block-{secrets.token_hex(8)}\x1e"
        script = [PRELUDE]
        for command in lines:
            script.append(command)
            script.append(f"printf '\\n%s\\n' '{mark}'")
        script.append("pwd")
        try:
            out = subprocess.run(
                ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
                cwd=self.cwd,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise Failure(f"{where}: the block's commands did not finish within {TIMEOUT}s") from None
        text = out.stdout.decode("utf-8", errors="replace")
        parts = text.split(f"\n{mark}\n")
        if len(parts) != len(lines) + 1:
            raise Failure(f"{where}: the commands ended early (a shell `exit`?); output:\n{text}")
        self.cwd = Path(parts[-1].strip())
        return [p.removesuffix("\n") for p in parts[:-1]]


def output_lines(printed: str) -> list[str]:
    return printed.split("\n") if printed else []


def run_document(path: Path, bindir: Path, base: Path, write: bool) -> list[str]:
    """Runs the document's blocks; returns the diffs, and rewrites it with `write`."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    sandbox: Sandbox | None = None
    diffs: list[str] = []
    replacements: list[tuple[Block, list[str]]] = []
    for block in blocks(lines, name):
        d, where = block.directive, f"{name}:{block.start}"
        if d.skip:
            continue
        if d.dir or sandbox is None:
            sandbox = Sandbox(base, bindir, d.dir or "repo")
        body = block.body(lines)
        if d.file:
            if Path(d.file).is_absolute() or ".." in Path(d.file).parts:
                raise Failure(f"{where}: file={d.file} must be a path inside the sandbox")
            target = sandbox.root / d.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(body) + "\n", encoding="utf-8")
            continue
        if d.output_of:
            (printed,) = sandbox.run([d.output_of], d.env, where)
            steps = [([], body)]
            results = [output_lines(printed)]
        else:
            steps = commands(body, where)
            typed = ["\n".join(c)[2:] for c, _ in steps]  # without the prompt
            printed_all = sandbox.run(typed, d.env, where)
            results = [output_lines(p) for p in printed_all]
        new_body: list[str] = []
        for (command, _), got in zip(steps, results):
            new_body.extend(command)
            new_body.extend(got)
        written, now = [mask(x) for x in body], [mask(x) for x in new_body]
        if written != now:
            diff = difflib.unified_diff(written, now, f"{where} (as written)", f"{where} (as run now)", lineterm="")
            diffs.append("\n".join(diff))
            replacements.append((block, new_body))
    if write:
        for block, new_body in reversed(replacements):
            lines[block.start : block.end] = new_body
        new_text = "\n".join(lines)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report differences, exit 1 if any")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks' output in place")
    parser.add_argument("--bin", default=str(ROOT / "target/debug/shipctl"), help="the shipctl binary")
    parser.add_argument("files", nargs="*", help="documents (default: README.md examples/walkthrough.md)")
    args = parser.parse_args()

    binary = Path(args.bin).resolve()
    if not os.access(binary, os.X_OK):
        print(f"error: no shipctl binary at {binary}; build it with `cargo build`", file=sys.stderr)
        return 2
    files = [Path(f).resolve() for f in args.files] or [ROOT / d for d in DOCUMENTS]
    with tempfile.TemporaryDirectory(prefix="console-blocks-run-") as base:
        bindir = Path(base) / "bin"
        bindir.mkdir()
        (bindir / "shipctl").symlink_to(binary)
        diffs: list[str] = []
        try:
            for path in files:
                diffs.extend(run_document(path, bindir, Path(base), args.write))
        except Failure as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.write:
        print(f"rewrote {len(diffs)} block(s) whose commands print something else now")
        return 0
    if diffs:
        print("\n\n".join(diffs))
        print(
            f"\n{len(diffs)} block(s) differ from what their commands print now; "
            "`scripts/console-blocks.py --write` puts the new output in place",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
