#!/usr/bin/env python3
"""Validates manifests against `shipctl schema` with Python's jsonschema, the
way an editor or a CI linter would: tests/it/manifest_schema.rs runs it.

    manifest-schema.py SCHEMA.json PATH...

A PATH is a manifest file, or a directory whose *.yaml/*.yml files are read
as shipctl reads them (not recursive, hidden files skipped). One JSON line per
file: {"file", "verdict", "detail"}, where verdict is

  valid       the schema accepts the document
  invalid     the schema refuses it (detail: the first error and its path)
  unreadable  no document for a schema to judge: not a regular file, over
              1 MiB, not UTF-8, not YAML, YAML that expands past 100 000
              nodes, or a value JSON has no form for (a list as a key)

YAML is read as YAML 1.2 (the core schema), as shipctl and the YAML language
server read it: `on`, `22:00` and `2026-12-20` are text, not a boolean, a
sexagesimal number or a date as PyYAML's YAML 1.1 default would have them.
"""

import json
import os
import re
import stat
import sys

import jsonschema
import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's implicit types."""


Yaml12Loader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
]:
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:" + tag, re.compile(pattern), first
    )


def _int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int)


def expanded_size(node, memo):
    """Nodes in the document once every alias is expanded (an alias bomb is
    small as text, and huge as the value a schema would walk)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1  # a cycle counts as too large
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(
            expanded_size(k, memo) + expanded_size(v, memo) for k, v in node.value
        )
    else:
        size = 1
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


def read(path):
    """The file's text, or raises ValueError saying why there is none."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ValueError(f"cannot stat: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError("over 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8")
    return text[1:] if text.startswith("\ufeff") else text


def document(text):
    """The YAML document as JSON values, or raises ValueError."""
    try:
        loader = Yaml12Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if expanded_size(node, {}) > MAX_NODES:
                raise ValueError("expands past 100 000 nodes")
            value = loader.construct_document(node)
        finally:
            loader.dispose()
        # Only what JSON can hold reaches the schema (bytes from !!binary stay
        # bytes: not a string, so the schema refuses them).
        json.dumps(value, default=lambda v: None)
        return value
    except ValueError:
        raise
    except (yaml.YAMLError, RecursionError, TypeError) as e:
        raise ValueError(f"not a YAML document for a schema: {type(e).__name__}: {str(e)[:200]}")


def judge(validator, path):
    try:
        value = document(read(path))
    except ValueError as e:
        return {"file": path, "verdict": "unreadable", "detail": str(e)}
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return {"file": path, "verdict": "valid", "detail": None}
    where = "/".join(str(p) for p in error.absolute_path) or "(the document)"
    return {"file": path, "verdict": "invalid", "detail": f"{where}: {error.message[:300]}"}


def manifests(path):
    if not os.path.isdir(path):
        return [path]
    names = sorted(
        n
        for n in os.listdir(path)
        if not n.startswith((".", "#")) and n.endswith((".yaml", ".yml"))
    )
    return [os.path.join(path, n) for n in names]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    for arg in sys.argv[2:]:
        for path in manifests(arg):
            print(json.dumps(judge(validator, path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
