"""The umbrella's public API against the reference, compared mechanically.

The reference (``../shared/seed/*.txt`` beside the repository) lists every
class with its bases, annotations, properties and methods, every function
and every value of ``netaio``. This test parses it and checks, for each
entry, that ``import netaio`` provides it: the same parameter names in the
same order, the same defaults, the same async/static/class method kind,
the annotated attributes and return types (at their outer type), parameter
types that accept what the reference's accept, and that every
``netaio.<module>.<Name>`` path the reference names imports. Parameters
added beyond the reference must be keyword-only. All mismatches are
reported together.

Without the reference beside the clone (a fresh checkout of this repository
alone) the comparison is skipped, with the reason shown.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import collections.abc
import enum
import importlib
import inspect
import logging
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typing_extensions

import netaio

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = Path(__file__).resolve().parent  # reference_0.0.2.txt


# -- parsing the reference -----------------------------------------------------


@dataclass
class Param:
    name: str
    annotation: str | None
    default: str | None  # the reference's repr of the default, None when required


@dataclass
class Signature:
    name: str
    kind: str  # "method", "async", "staticmethod" or "classmethod"
    params: list[Param]
    returns: str | None


@dataclass
class ClassEntry:
    name: str
    bases: list[str]
    annotations: dict[str, str] = field(default_factory=dict)
    properties: list[str] = field(default_factory=list)
    methods: list[Signature] = field(default_factory=list)


@dataclass
class Reference:
    source: Path
    classes: list[ClassEntry] = field(default_factory=list)
    functions: list[Signature] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)


_SIGNATURE = re.compile(
    r"^(?P<async>async )?(?:@(?P<deco>staticmethod|classmethod) )?"
    r"(?P<name>\w+)\((?P<params>.*)\)(?: -> (?P<returns>.+?))?:$"
)
_CLASS = re.compile(r"^(?P<name>\w+)(?:\((?P<bases>[^)]*)\))?$")
_ITEM = re.compile(r"^- (?P<name>\w+): (?P<text>.*)$")
_VALUE = re.compile(r"^- `(?P<name>\w+)`: (?P<type>.+)$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets, quotes and ``<...>`` reprs."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{<":
            depth += 1
        elif char in ")]}>":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _parse_param(text: str) -> Param:
    name, _, rest = text.partition(":")
    annotation, default = rest, None
    if " = " in rest:
        annotation, _, default = rest.partition(" = ")
    return Param(name.strip(), annotation.strip() or None, default)


def _parse_signature(text: str) -> Signature:
    match = _SIGNATURE.match(text)
    if match is None:
        raise ValueError(f"unparsed signature in the reference: {text!r}")
    kind = "async" if match["async"] else (match["deco"] or "method")
    params = [_parse_param(p) for p in _split_top_level(match["params"])]
    return Signature(match["name"], kind, params, match["returns"])


def _items(lines: list[str]) -> Iterator[str]:
    """List items of a section, with wrapped lines joined."""
    item: list[str] = []
    for line in lines:
        if line.startswith("- "):
            if item:
                yield " ".join(item)
            item = [line]
        elif item and line.strip():
            item.append(line.strip())
    if item:
        yield " ".join(item)


def parse_reference(path: Path) -> Reference:
    """Parse the reference's markdown into classes, functions and values."""
    reference = Reference(path)
    part, section = "", ""
    current: ClassEntry | None = None
    pending: dict[str, list[str]] = {}

    def flush() -> None:
        if current is None:
            return
        for item in _items(pending.pop("Annotations", [])):
            match = _ITEM.match(item)
            assert match is not None, item
            current.annotations[match["name"]] = match["text"]
        for item in _items(pending.pop("Properties", [])):
            match = _ITEM.match(item)
            assert match is not None, item
            current.properties.append(match["name"])
        pending.clear()

    for line in path.read_text().splitlines():
        if line.startswith("## "):
            flush()
            part, section, current = line[3:].strip(), "", None
        elif line.startswith("### ") and part in ("Classes", "Functions"):
            flush()
            title = line[4:].strip().strip("`")
            section = ""
            if part == "Classes":
                match = _CLASS.match(title)
                assert match is not None, f"unparsed class title: {title!r}"
                bases = [b.strip() for b in (match["bases"] or "").split(",") if b.strip()]
                current = ClassEntry(match["name"], bases)
                reference.classes.append(current)
            else:
                current = None
                reference.functions.append(_parse_signature(title))
        elif line.startswith("#### ") and current is not None:
            section = line[5:].strip()
            pending.setdefault(section, [])
        elif line.startswith("##### ") and current is not None and section == "Methods":
            current.methods.append(_parse_signature(line[6:].strip().strip("`")))
        elif current is not None and section in ("Annotations", "Properties"):
            pending[section].append(line)
        elif part == "Values":
            match = _VALUE.match(line)
            if match is not None:
                reference.values[match["name"]] = match["type"]
    flush()
    return reference


def _reference_files() -> list[Path]:
    """The API contract, kept in the repository (the API of netaio 0.0.2)."""
    return sorted(REFERENCE_DIR.glob("reference_*.txt"))


REFERENCES = _reference_files()


def test_the_reference_is_in_the_repository() -> None:
    assert REFERENCES, f"no reference_*.txt in {REFERENCE_DIR}"
    assert all(p.read_text().startswith("# netaio\n") for p in REFERENCES)


@pytest.fixture(params=REFERENCES, ids=lambda p: p.name)
def reference(request: pytest.FixtureRequest) -> Reference:
    path: Path = request.param
    return parse_reference(path)


# -- resolving the reference's names and reprs ---------------------------------

_PUBLIC: dict[str, Any] = {name: getattr(netaio, name) for name in netaio.__all__}
_SUBMODULES = ("netaio", "netaio.common", "netaio.auth", "netaio.client", "netaio.server")
_ALIASES: dict[str, Any] = {
    "Callable": collections.abc.Callable,
    "Hashable": collections.abc.Hashable,
    "Coroutine": collections.abc.Coroutine,
    "Logger": logging.Logger,
    "StreamReader": asyncio.StreamReader,
    "StreamWriter": asyncio.StreamWriter,
    "Protocol": typing.Protocol,
    "Enum": enum.Enum,
    "NoneType": type(None),
}
_MISSING = object()
_SELF_TYPES = (getattr(typing, "Self", _MISSING), typing_extensions.Self)


def resolve_name(name: str) -> Any:
    """The object a bare or dotted name in the reference stands for."""
    name = name.strip()
    if name.startswith("typing."):
        name = name.removeprefix("typing.")
    if name in _ALIASES:
        return _ALIASES[name]
    if "." in name:
        module_name, _, attribute = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            return _MISSING
    for module_name in _SUBMODULES:
        value = getattr(importlib.import_module(module_name), name, _MISSING)
        if value is not _MISSING:
            return value
    return getattr(builtins, name, _MISSING)


def resolve_default(text: str) -> Any:
    """The object that the reference's repr of a default stands for."""
    function = re.fullmatch(r"<function (\w+) at 0x[0-9a-f]+>", text)
    if function is not None:
        return resolve_name(function[1])
    logger = re.fullmatch(r"<Logger ([\w.]+) \((\w+)\)>", text)
    if logger is not None:
        found = logging.getLogger(logger[1])
        return found if logging.getLevelName(found.level) == logger[2] else _MISSING
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    head = re.match(r"[\w.]+", text)
    namespace = {head[0].split(".")[0]: resolve_name(head[0].split(".")[0])} if head else {}
    try:
        return eval(text, {"__builtins__": {}}, namespace)  # the reference's own reprs
    except Exception:
        return _MISSING


def outer_type(text: str) -> tuple[Any, Any]:
    """An annotation's outer type, and for ``type[X]`` its argument."""
    text = text.strip()
    quoted = re.fullmatch(r"<class '([\w.]+)'>", text)
    if quoted is not None:
        text = quoted[1]
    if " | " in text and "[" not in text.split(" | ")[0]:
        text = text.split(" | ")[0]
    head, bracket, rest = text.partition("[")
    outer = resolve_name(head)
    argument = None
    if outer is type and bracket:
        argument = resolve_name(rest.rstrip("]"))
    return outer, argument


def actual_outer_type(hint: Any, owner: type | None) -> tuple[Any, Any]:
    """The same view of one of our type hints: Optional removed, TypeVars
    read as their bound, ``Self`` as the owning class."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(members) == 1:
            return actual_outer_type(members[0], owner)
        return typing.Union, None
    if isinstance(hint, typing.TypeVar):
        return actual_outer_type(hint.__bound__, owner)
    if any(hint is self_type for self_type in _SELF_TYPES):
        return owner, None
    if origin is type:
        (argument,) = typing.get_args(hint)
        return type, actual_outer_type(argument, owner)[0]
    return (origin or hint), None


def _outers(hint: Any) -> list[Any]:
    """The outer types a parameter annotation accepts: union members,
    TypeVar bounds and generic origins."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return [o for member in typing.get_args(hint) for o in _outers(member)]
    if isinstance(hint, typing.TypeVar):
        return _outers(hint.__bound__) if hint.__bound__ is not None else [Any]
    return [origin or hint]


def accepts(hint: Any, reference: str) -> bool:
    """Whether our parameter annotation accepts what the reference's does
    (the same type, a wider one, or a Protocol the reference's class meets)."""
    wanted = outer_type(reference)[0]
    if wanted is _MISSING:
        return False
    for accepted in _outers(hint):
        if accepted is Any or accepted is wanted:
            return True
        if not (isinstance(accepted, type) and isinstance(wanted, type)):
            continue
        if getattr(accepted, "_is_protocol", False):
            members = typing_extensions.get_protocol_members(accepted)
            known = set(dir(wanted)) | set(_hints(wanted))
            if members <= known:
                return True
        elif issubclass(wanted, accepted):
            return True
    return False


# -- comparing -------------------------------------------------------------------


def _equal_default(expected: Any, actual: Any) -> bool:
    if expected is _MISSING:
        return False
    if callable(expected) or isinstance(expected, logging.Logger | type):
        return actual is expected
    return type(actual) is type(expected) and bool(actual == expected)


def _hints(target: Any) -> dict[str, Any]:
    """Resolved annotations; netaio's public names fill in those that a
    module imports only for type checking (``MessageType`` in protocols)."""
    try:
        return typing.get_type_hints(target, localns=_PUBLIC)
    except Exception as exc:  # an unresolvable annotation is itself a mismatch
        return {"__error__": exc}


def compare_signature(
    where: str, expected: Signature, actual: Any, owner: type | None, problems: list[str]
) -> None:
    """Compare one method or function with its reference entry."""
    if owner is not None:
        static = inspect.getattr_static(owner, expected.name, None)
        kind = (
            "staticmethod"
            if isinstance(static, staticmethod)
            else "classmethod"
            if isinstance(static, classmethod)
            else "async"
            if inspect.iscoroutinefunction(actual)
            else "method"
        )
    else:
        kind = "async" if inspect.iscoroutinefunction(actual) else "method"
    if kind != expected.kind:
        problems.append(f"{where}: is a {kind}, the reference has a {expected.kind}")
    try:
        signature = inspect.signature(actual)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: no signature ({exc})")
        return
    hints = _hints(actual)
    if "__error__" in hints:
        problems.append(f"{where}: annotations do not resolve: {hints['__error__']}")
        hints = {}
    params = list(signature.parameters.values())
    if owner is not None and expected.kind in ("method", "async"):
        params = params[1:]  # self (a classmethod's cls is already bound)
    for position, want in enumerate(expected.params):
        if position >= len(params):
            problems.append(f"{where}: parameter {want.name!r} is missing")
            continue
        have = params[position]
        if have.name != want.name:
            problems.append(
                f"{where}: parameter {position + 1} is {have.name!r}, the reference has "
                f"{want.name!r}"
            )
            continue
        if have.kind not in (have.POSITIONAL_OR_KEYWORD, have.POSITIONAL_ONLY):
            problems.append(f"{where}: parameter {want.name!r} must be positional-or-keyword")
        if want.annotation is not None and not accepts(hints.get(want.name, Any), want.annotation):
            problems.append(
                f"{where}: parameter {want.name!r} is annotated {hints[want.name]!r}, which "
                f"does not accept the reference's {want.annotation}"
            )
        if want.default is None:
            if have.default is not have.empty:
                continue  # a new default for a required parameter is compatible
        elif have.default is have.empty:
            problems.append(f"{where}: parameter {want.name!r} lost its default {want.default}")
        elif not _equal_default(resolve_default(want.default), have.default):
            problems.append(
                f"{where}: default of {want.name!r} is {have.default!r}, the reference has "
                f"{want.default}"
            )
    for extra in params[len(expected.params) :]:
        if extra.kind is not extra.KEYWORD_ONLY:
            problems.append(
                f"{where}: added parameter {extra.name!r} must be keyword-only, not "
                f"{extra.kind.description}"
            )
        elif extra.default is extra.empty:
            problems.append(f"{where}: added parameter {extra.name!r} must have a default")
    if expected.returns is not None and hints:
        if "return" not in hints:
            problems.append(f"{where}: no return annotation; the reference has {expected.returns}")
        else:
            want_type = outer_type(expected.returns)
            have_type = actual_outer_type(hints["return"], owner)
            if want_type != have_type:
                problems.append(
                    f"{where}: returns {hints['return']!r}, the reference has {expected.returns}"
                )


def compare_class(entry: ClassEntry, problems: list[str]) -> None:
    """Compare one class with its reference entry."""
    cls = _PUBLIC.get(entry.name)
    if not isinstance(cls, type):
        problems.append(f"netaio.{entry.name}: missing (or not a class)")
        return
    for base in entry.bases:
        if base == "Protocol":
            if not getattr(cls, "_is_protocol", False):
                problems.append(f"{entry.name}: is not a Protocol")
        elif not issubclass(cls, resolve_name(base)):
            problems.append(f"{entry.name}: is not a subclass of {base}")
    hints = _hints(cls)
    if "__error__" in hints:
        problems.append(f"{entry.name}: annotations do not resolve: {hints['__error__']}")
    for name, text in entry.annotations.items():
        if name not in hints:
            problems.append(f"{entry.name}.{name}: annotation missing (reference: {text})")
            continue
        want, have = outer_type(text), actual_outer_type(hints[name], cls)
        if want[0] is _MISSING or want[1] is _MISSING:
            problems.append(f"{entry.name}.{name}: reference type {text} does not resolve")
        elif want != have:
            problems.append(f"{entry.name}.{name}: is {hints[name]!r}, the reference has {text}")
    for name in entry.properties:
        member = inspect.getattr_static(cls, name, None)
        if not isinstance(member, property) and name not in hints:
            problems.append(f"{entry.name}.{name}: property missing")
    for method in entry.methods:
        actual = getattr(cls, method.name, None)
        if actual is None:
            problems.append(f"{entry.name}.{method.name}: method missing")
            continue
        compare_signature(f"{entry.name}.{method.name}", method, actual, cls, problems)


def compare(reference: Reference) -> list[str]:
    """Every difference between ``netaio`` and the reference."""
    problems: list[str] = []
    for entry in reference.classes:
        compare_class(entry, problems)
    for function in reference.functions:
        actual = _PUBLIC.get(function.name)
        if not callable(actual):
            problems.append(f"netaio.{function.name}: function missing")
            continue
        compare_signature(f"netaio.{function.name}", function, actual, None, problems)
    for name, type_name in reference.values.items():
        value = _PUBLIC.get(name, _MISSING)
        if value is _MISSING:
            problems.append(f"netaio.{name}: value missing")
        elif type(value).__name__ != type_name:
            problems.append(f"netaio.{name}: is a {type(value).__name__}, not a {type_name}")
    text = reference.source.read_text()
    for dotted in sorted(set(re.findall(r"\bnetaio(?:\.\w+)+", text))):
        if resolve_name(dotted) is _MISSING:
            problems.append(f"{dotted}: the reference names it, but it does not import")
    return problems


# -- tests -----------------------------------------------------------------------


def test_reference_parses_completely(reference: Reference) -> None:
    """Guard the parser: the reference's sections were all read."""
    names = {c.name for c in reference.classes}
    assert {"TCPServer", "TCPClient", "Message", "HMACAuthPlugin", "MessageType"} <= names
    assert {f.name for f in reference.functions} >= {"keys_extractor", "version"}
    assert set(reference.values) == {"Handler", "default_server_logger", "default_client_logger"}
    server = next(c for c in reference.classes if c.name == "TCPServer")
    assert len(server.methods) >= 10
    assert "subscriptions" in server.annotations
    init = server.methods[0]
    assert [p.name for p in init.params][:2] == ["host", "port"]
    assert init.params[0].default == "'0.0.0.0'"


def test_umbrella_matches_reference(reference: Reference) -> None:
    problems = compare(reference)
    assert not problems, (
        f"netaio differs from the reference {reference.source.name} in "
        f"{len(problems)} place(s):\n  " + "\n  ".join(problems)
    )


def test_umbrella_exports_every_reference_name(reference: Reference) -> None:
    documented = (
        {c.name for c in reference.classes}
        | {f.name for f in reference.functions}
        | set(reference.values)
    )
    assert documented <= set(netaio.__all__), sorted(documented - set(netaio.__all__))


def test_comparison_detects_mismatches(reference: Reference) -> None:
    """The comparison fails on a renamed parameter, a changed default, a
    wrong method kind, a narrower parameter type, a missing class and a
    missing value."""
    mutated = parse_reference(reference.source)
    server = next(c for c in mutated.classes if c.name == "TCPServer")
    server.methods[0].params[1].name = "portnumber"
    client = next(c for c in mutated.classes if c.name == "TCPClient")
    client.methods[0].params[0].default = "'10.0.0.1'"
    header = next(c for c in mutated.classes if c.name == "Header")
    decode = next(m for m in header.methods if m.name == "decode")
    decode.kind = "staticmethod"
    subscribe = next(m for m in server.methods if m.name == "subscribe")
    subscribe.params[1].annotation = "StreamReader"
    mutated.classes.append(ClassEntry("NoSuchClass", []))
    mutated.values["no_such_value"] = "Logger"
    problems = "\n".join(compare(mutated))
    assert "parameter 2 is 'port', the reference has 'portnumber'" in problems
    assert "default of 'host' is '127.0.0.1', the reference has '10.0.0.1'" in problems
    assert "Header.decode: is a classmethod, the reference has a staticmethod" in problems
    assert "TCPServer.subscribe: parameter 'writer' is annotated" in problems
    assert "does not accept the reference's StreamReader" in problems
    assert "netaio.NoSuchClass: missing" in problems
    assert "netaio.no_such_value: value missing" in problems


def test_resolving_reference_reprs() -> None:
    """The reference writes defaults as reprs; each stands for our object."""
    assert resolve_default("<function keys_extractor at 0x743d6f4268c0>") is netaio.keys_extractor
    assert resolve_default("<Logger netaio.client (INFO)>") is netaio.default_client_logger
    assert resolve_default("AuthFields(fields={})") == netaio.AuthFields({})
    assert resolve_default("MessageType.REQUEST_URI") is netaio.MessageType.REQUEST_URI
    assert resolve_default("Header") is netaio.Header
    assert resolve_default("b'1'") == b"1"
    assert resolve_default("{}") == {}
    assert resolve_default("None") is None
    assert resolve_default("<Logger netaio.client (DEBUG)>") is _MISSING
