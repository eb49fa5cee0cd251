"""Treatments: binary predicates on model specs, by name or as a small safe expression.

A spec is the JSON list of a search space: CNN layers (``{"type": "conv", "kernel": 5, ...}``),
NAS-Bench-201 edges (``{"edge": 3, "op": "nor_conv_3x3"}``) or scikit-learn steps
(``{"step": "model", "kind": "svm"}``). An item's *kind* is its ``type`` (CNN; an
``activation`` layer's ``fn``), ``op`` (NB201) or ``kind`` (sklearn).

Named treatments (:data:`NAMED`): ``maxpool``, ``avgpool``, ``batchnorm``, ``dropout``, ``gelu``,
``globalpool``, ``dense``, ``stride2``, ``kernel5_first``, ``depth>=K`` (at least K conv layers),
and for NB201 ``conv3x3``, ``conv1x1``, ``skip``, ``no_skip``, ``zero`` (any ``none`` edge),
``edgeK=OP`` (edge K uses OP).

Expressions (:func:`parse_treatment`) combine, with ``and``, ``or``, ``not``, parentheses and the
comparisons ``== != < <= > >=``:

* numbers, quoted strings, and bare words that are layer types / NB201 ops (taken as strings);
* named treatments (booleans), e.g. ``maxpool and not batchnorm``;
* variables ``depth`` (conv layers), ``layers`` (spec items), ``convs``, ``denses``, ``pools``;
* functions ``has(kind)``, ``count(kind)``, ``edge(k)`` (the op of NB201 edge ``k``),
  ``first(kind, field)`` / ``last(kind, field)`` (a field of the first/last item of that kind,
  ``None`` when there is none), e.g. ``first(conv, kernel) == 5``.

Nothing is evaluated with ``eval``: the expression is tokenised and parsed by a recursive-descent
parser into closures; any other name or syntax is a :class:`~openmindspore.errors.ConfigError`
naming the position and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from openmindspore.errors import ConfigError

__all__ = ["Treatment", "NAMED", "get_treatment", "parse_treatment", "item_kind", "count_kind"]

Spec = Sequence[Any]
_NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_LAYER_KINDS = (
    "conv",
    "maxpool",
    "avgpool",
    "batchnorm",
    "activation",
    "dropout",
    "globalpool",
    "dense",
    "flatten",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
)


@dataclass(frozen=True)
class Treatment:
    """A named binary predicate on specs. ``phrase_on``/``phrase_off`` read "using max-pooling"."""

    name: str
    fn: Callable[[Spec], bool]
    phrase_on: str
    phrase_off: str

    def __call__(self, spec: Spec) -> bool:
        return bool(self.fn(spec))


def item_kind(item: Any) -> str | None:
    """The kind of one spec item: CNN ``type`` (``fn`` of an activation), NB201 ``op``, sklearn ``kind``."""
    if not isinstance(item, dict):
        return None
    if "type" in item:
        return str(item.get("fn", "relu")) if item["type"] == "activation" else str(item["type"])
    if "op" in item:
        return str(item["op"])
    if "kind" in item:
        return str(item["kind"])
    return None


def count_kind(spec: Spec, kind: str) -> int:
    """How many items of ``spec`` have this kind."""
    return sum(item_kind(it) == kind for it in spec)


#: the model's defaults for omitted fields (see openmindspore.models.cnn)
_DEFAULTS = {("conv", "kernel"): 3, ("conv", "stride"): 1, ("maxpool", "kernel"): 2, ("avgpool", "kernel"): 2}


def _field(spec: Spec, kind: str, fld: str, last: bool = False) -> Any:
    items = [it for it in spec if item_kind(it) == kind]
    if not items:
        return None
    return items[-1 if last else 0].get(fld, _DEFAULTS.get((kind, fld)))


def _edge(spec: Spec, k: int) -> str | None:
    for it in spec:
        if isinstance(it, dict) and it.get("edge") == k:
            return str(it.get("op"))
    return None


def _has(name: str, kind: str, on: str, off: str) -> Treatment:
    return Treatment(name, lambda s: count_kind(s, kind) > 0, on, off)


NAMED: dict[str, Treatment] = {
    "maxpool": _has("maxpool", "maxpool", "using max-pooling", "removing max-pooling"),
    "avgpool": Treatment(
        "avgpool",
        lambda s: count_kind(s, "avgpool") + count_kind(s, "avg_pool_3x3") > 0,
        "using average pooling",
        "removing average pooling",
    ),
    "batchnorm": _has("batchnorm", "batchnorm", "using batch-norm", "removing batch-norm"),
    "dropout": _has("dropout", "dropout", "using dropout", "removing dropout"),
    "gelu": _has("gelu", "gelu", "using GELU activations", "removing GELU activations"),
    "globalpool": _has("globalpool", "globalpool", "a global-pooling head", "no global-pooling head"),
    "dense": _has("dense", "dense", "hidden dense layers", "no hidden dense layer"),
    "stride2": Treatment(
        "stride2",
        lambda s: any(item_kind(i) == "conv" and i.get("stride", 1) == 2 for i in s),
        "a stride-2 convolution",
        "no stride-2 convolution",
    ),
    "kernel5_first": Treatment(
        "kernel5_first",
        lambda s: _field(s, "conv", "kernel") == 5,
        "a 5x5 kernel in the first conv",
        "a 3x3 (not 5x5) first conv",
    ),
    "conv3x3": _has("conv3x3", "nor_conv_3x3", "a 3x3 conv edge", "no 3x3 conv edge"),
    "conv1x1": _has("conv1x1", "nor_conv_1x1", "a 1x1 conv edge", "no 1x1 conv edge"),
    "skip": _has("skip", "skip_connect", "a skip connection", "no skip connection"),
    "no_skip": Treatment(
        "no_skip", lambda s: count_kind(s, "skip_connect") == 0, "no skip connection", "a skip connection"
    ),
    "zero": _has("zero", "none", "a zeroed (none) edge", "no zeroed edge"),
}
_PATTERNS = ("depth>=K", "edgeK=OP")


def get_treatment(name_or_expr: str) -> Treatment:
    """A named treatment (see :data:`NAMED`), ``depth>=K``, ``edgeK=OP``, or an expression."""
    s = str(name_or_expr).strip()
    if s in NAMED:
        return NAMED[s]
    m = re.fullmatch(r"depth\s*>=\s*(\d+)", s)
    if m:
        k = int(m.group(1))
        return Treatment(
            s, lambda sp: count_kind(sp, "conv") >= k, f"at least {k} conv layers", f"fewer than {k} conv layers"
        )
    m = re.fullmatch(r"edge(\d)\s*=\s*(\w+)", s)
    if m:
        k, op = int(m.group(1)), m.group(2)
        if op not in _NB201_OPS or not 0 <= k <= 5:
            raise ConfigError("--treatment", s, f"edgeK=OP with K in 0..5 and OP in {list(_NB201_OPS)}")
        return Treatment(s, lambda sp: _edge(sp, k) == op, f"{op} on edge {k}", f"another op than {op} on edge {k}")
    fn = parse_treatment(s)
    return Treatment(s, fn, f"[{s}] true", f"[{s}] false")


# ---------------------------------------------------------------------------- expression parser
_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|<=|>=|<|>|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)
_VARS: dict[str, Callable[[Spec], Any]] = {
    "depth": lambda s: count_kind(s, "conv"),
    "convs": lambda s: count_kind(s, "conv"),
    "layers": lambda s: len(s),
    "denses": lambda s: count_kind(s, "dense"),
    "pools": lambda s: count_kind(s, "maxpool") + count_kind(s, "avgpool"),
}
_FUNCS = {"has": 1, "count": 1, "edge": 1, "first": 2, "last": 2}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
}
Node = Callable[[Spec], Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                self.fail(pos, "a number, 'string', name, comparison or parenthesis")
            assert m is not None  # fail() raised otherwise
            kind = m.lastgroup or ""
            self.toks.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, pos: int, expected: str) -> NoReturn:
        raise ConfigError(
            "--treatment",
            self.text,
            f"{expected} at position {pos} (near {self.text[pos : pos + 12]!r})",
            f"named treatments: {sorted(NAMED)} + {list(_PATTERNS)}; variables: {sorted(_VARS)}; "
            f"functions: has(kind), count(kind), edge(k), first(kind, field), last(kind, field)",
        )

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        t = self.peek()
        if t is None or (value is not None and t[1] != value):
            self.fail(t[2] if t else len(self.text), repr(value) if value else "more input")
        self.i += 1
        return t

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            self.fail(self.peek()[2], "the end of the expression")  # type: ignore[index]
        return node

    def or_(self) -> Node:
        left = self.and_()
        while (t := self.peek()) and t[1] == "or":
            self.take()
            a, b = left, self.and_()
            left = (lambda x, y: lambda s: bool(x(s)) or bool(y(s)))(a, b)
        return left

    def and_(self) -> Node:
        left = self.not_()
        while (t := self.peek()) and t[1] == "and":
            self.take()
            a, b = left, self.not_()
            left = (lambda x, y: lambda s: bool(x(s)) and bool(y(s)))(a, b)
        return left

    def not_(self) -> Node:
        t = self.peek()
        if t and t[1] == "not":
            self.take()
            inner = self.not_()
            return lambda s: not inner(s)
        return self.cmp()

    def cmp(self) -> Node:
        left = self.atom()
        t = self.peek()
        if t and t[1] in _CMP:
            self.take()
            right, f = self.atom(), _CMP[t[1]]
            return lambda s: f(left(s), right(s))
        return left

    def _word(self) -> str:
        t = self.take()
        if t[0] == "str":
            return t[1][1:-1]
        if t[0] in ("name", "num"):
            return t[1]
        self.fail(t[2], "a kind or field name")
        return ""

    def atom(self) -> Node:
        t = self.peek()
        if t is None:
            self.fail(len(self.text), "a value")
        kind, val, pos = self.take()
        if kind == "num":
            num = float(val) if "." in val else int(val)
            return lambda s: num
        if kind == "str":
            return lambda s: val[1:-1]
        if val == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind != "name":
            self.fail(pos, "a value")
        if val in _FUNCS:
            self.take("(")
            args = [self._word()]
            for _ in range(_FUNCS[val] - 1):
                self.take(",")
                args.append(self._word())
            self.take(")")
            return self._func(val, args, pos)
        if val in _VARS:
            return _VARS[val]
        if val in NAMED:
            return NAMED[val].fn
        if val in _LAYER_KINDS or val in _NB201_OPS or val in ("true", "false"):
            const = {"true": True, "false": False}.get(val, val)
            return lambda s: const
        self.fail(pos, f"a known name (got {val!r})")
        return lambda s: None

    def _func(self, name: str, args: list[str], pos: int) -> Node:
        if name == "has":
            return lambda s: count_kind(s, args[0]) > 0
        if name == "count":
            return lambda s: count_kind(s, args[0])
        if name == "edge":
            if not args[0].isdigit():
                self.fail(pos, "edge(k) with an integer k in 0..5")
            k = int(args[0])
            return lambda s: _edge(s, k)
        last = name == "last"
        return lambda s: _field(s, args[0], args[1], last)


def parse_treatment(text: str) -> Callable[[Spec], bool]:
    """Compile an expression over a spec into a predicate (see module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--treatment", text, "a treatment name or expression", f"named: {sorted(NAMED)}")
    node = _Parser(text).parse()
    return lambda spec: bool(node(spec))
