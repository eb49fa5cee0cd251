"""Grammars of model-building steps, as data.

A grammar is a finite set of named *states*; each state lists the *choices* that may be taken there.
A choice names the state that follows (``next``; ``None`` ends the model) and says what it writes into
the model spec:

* ``emit``: a dict (or list of dicts) appended to the spec, e.g. ``{"type": "conv"}``;
* ``set``: a dict merged into the last emitted item, e.g. ``{"channels": 32}``;
* ``count``: names of counters this choice increments (e.g. ``["layers"]``). The grammar's
  ``counters`` give each counter a maximum; a choice whose counter is exhausted is not allowed.

Walking from ``start`` and taking one choice per state produces a decision sequence and a spec (a
list of dicts). Adding a model family means adding a grammar (plus an evaluator), not a code path.

Checks at load (:func:`Grammar.from_dict`), each naming the state: unknown ``next`` targets, states
unreachable from ``start``, dead-end states that cannot reach the end, states without choices, and
cycles made only of uncounted choices (which could loop forever).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["Choice", "State", "Grammar", "GrammarError", "build_spec"]


class GrammarError(ConfigError):
    """A grammar that cannot generate models: names the grammar, the state and the problem."""

    def __init__(self, grammar: str, state: str, problem: str, fix: str = "") -> None:
        super().__init__(f"grammar[{grammar!r}].states[{state!r}]", state, problem, fix)


@dataclass(frozen=True)
class Choice:
    """One allowed step out of a state."""

    id: str
    next: str | None
    emit: tuple[dict, ...] = ()
    set: Mapping[str, Any] = field(default_factory=dict)
    count: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    """A decision point: its name and its choices (order is the index used by the chain)."""

    name: str
    choices: tuple[Choice, ...]

    def index(self, choice_id: str) -> int:
        for i, c in enumerate(self.choices):
            if c.id == choice_id:
                return i
        raise KeyError(f"state {self.name!r} has no choice {choice_id!r}; choices: {[c.id for c in self.choices]}")


@dataclass(frozen=True)
class Grammar:
    """A validated grammar. Build with :meth:`from_dict`."""

    name: str
    start: str
    states: Mapping[str, State]
    counters: Mapping[str, int]

    # ------------------------------------------------------------------ construction and checks
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grammar:
        """Parse and check a grammar given as plain data::

        {"name": "g", "start": "s0", "counters": {"layers": 8},
         "states": {"s0": [{"id": "a", "next": "s1", "emit": {...}, "count": ["layers"]}, ...], ...}}
        """
        name = str(data.get("name", "grammar"))
        raw_states = data.get("states")
        if not isinstance(raw_states, Mapping) or not raw_states:
            raise ConfigError(f"grammar[{name!r}].states", raw_states, "a non-empty mapping of state -> choices")
        counters = {str(k): int(v) for k, v in dict(data.get("counters", {})).items()}
        for k, v in counters.items():
            if v < 0:
                raise ConfigError(f"grammar[{name!r}].counters[{k!r}]", v, "an integer >= 0")
        states: dict[str, State] = {}
        for sname, raw_choices in raw_states.items():
            if not raw_choices:
                raise GrammarError(name, sname, "at least one choice", "add a choice or remove the state")
            choices, seen = [], set()
            for rc in raw_choices:
                cid = str(rc["id"])
                if cid in seen:
                    raise GrammarError(name, sname, f"unique choice ids (duplicate {cid!r})")
                seen.add(cid)
                emit = rc.get("emit", ())
                emit = (emit,) if isinstance(emit, Mapping) else tuple(emit)
                count = tuple(rc.get("count", ()))
                for cn in count:
                    if cn not in counters:
                        raise GrammarError(
                            name,
                            sname,
                            f"choice {cid!r} to count a declared counter (got {cn!r}; counters: {sorted(counters)})",
                        )
                choices.append(
                    Choice(cid, rc.get("next"), tuple(dict(e) for e in emit), dict(rc.get("set", {})), count)
                )
            states[str(sname)] = State(str(sname), tuple(choices))
        start = str(data.get("start", next(iter(states))))
        g = cls(name, start, states, counters)
        g._check()
        return g

    def _check(self) -> None:
        if self.start not in self.states:
            raise GrammarError(self.name, self.start, f"'start' to be a defined state (states: {sorted(self.states)})")
        for s in self.states.values():
            for c in s.choices:
                if c.next is not None and c.next not in self.states:
                    raise GrammarError(
                        self.name,
                        s.name,
                        f"choice {c.id!r} to lead to a defined state (got next={c.next!r})",
                        "define that state or use next: null to end",
                    )
        # reachability from start
        seen, todo = {self.start}, [self.start]
        while todo:
            for c in self.states[todo.pop()].choices:
                if c.next is not None and c.next not in seen:
                    seen.add(c.next)
                    todo.append(c.next)
        for name in self.states:
            if name not in seen:
                raise GrammarError(
                    self.name,
                    name,
                    f"to be reachable from start={self.start!r} (it is unreachable)",
                    "add a choice that leads to it or remove it",
                )
        # every state must reach the end using uncounted choices only (so exhausted counters never trap a walk)
        can_end: set[str] = set()
        changed = True
        while changed:
            changed = False
            for s in self.states.values():
                if s.name not in can_end and any(
                    not c.count and (c.next is None or c.next in can_end) for c in s.choices
                ):
                    can_end.add(s.name)
                    changed = True
        for name in self.states:
            if name not in can_end:
                raise GrammarError(
                    self.name,
                    name,
                    "a path to the end through uncounted choices (it is a dead end)",
                    "add a choice with next: null, or one leading towards the end without a counter",
                )
        # uncounted cycles could loop forever
        color: dict[str, int] = {}

        def visit(u: str, path: list[str]) -> None:
            color[u] = 1
            for c in self.states[u].choices:
                if c.count or c.next is None:
                    continue
                if color.get(c.next) == 1:
                    cyc = path[path.index(c.next) :] + [c.next] if c.next in path else [u, c.next]
                    raise GrammarError(
                        self.name,
                        u,
                        f"every cycle to increment a counter (uncounted cycle {' -> '.join(cyc)})",
                        "add a counter to a choice on the cycle",
                    )
                if c.next not in color:
                    visit(c.next, path + [c.next])
            color[u] = 2

        for name in self.states:
            if name not in color:
                visit(name, [name])

    # ------------------------------------------------------------------ walking
    def allowed(self, state: str, used: Mapping[str, int]) -> list[int]:
        """Indices of the choices of ``state`` whose counters are not exhausted given ``used``."""
        return [
            i
            for i, c in enumerate(self.states[state].choices)
            if all(used.get(k, 0) < self.counters[k] for k in c.count)
        ]

    def walk(self, choice_ids: Iterable[str]) -> list[tuple[str, int]]:
        """Replay ``choice_ids`` from ``start``; returns ``[(state, choice index)]`` or raises ConfigError."""
        state: str | None = self.start
        used: dict[str, int] = {}
        out: list[tuple[str, int]] = []
        for cid in choice_ids:
            if state is None:
                raise ConfigError("steps", cid, f"no further decision (grammar {self.name!r} already ended)")
            st = self.states[state]
            try:
                i = st.index(cid)
            except KeyError as e:
                raise ConfigError("steps", cid, str(e)) from None
            if i not in self.allowed(state, used):
                raise ConfigError("steps", cid, f"a choice allowed at {state!r} (its counter is exhausted)")
            out.append((state, i))
            for k in st.choices[i].count:
                used[k] = used.get(k, 0) + 1
            state = st.choices[i].next
        if state is not None:
            raise ConfigError("steps", list(choice_ids), f"a complete walk (it stops at state {state!r})")
        return out

    def choice(self, state: str, index: int) -> Choice:
        return self.states[state].choices[index]

    @property
    def num_choices(self) -> dict[str, int]:
        return {s: len(st.choices) for s, st in self.states.items()}

    def to_dict(self) -> dict[str, Any]:
        """The grammar as plain data (round-trips through :meth:`from_dict`)."""
        return {
            "name": self.name,
            "start": self.start,
            "counters": dict(self.counters),
            "states": {
                s: [
                    {
                        "id": c.id,
                        "next": c.next,
                        "emit": [dict(e) for e in c.emit],
                        "set": dict(c.set),
                        "count": list(c.count),
                    }
                    for c in st.choices
                ]
                for s, st in self.states.items()
            },
        }


def build_spec(grammar: Grammar, path: Iterable[tuple[str, int]]) -> list[dict]:
    """Turn a walk ``[(state, choice index)]`` into the spec: ``emit`` appends, ``set`` updates the last item."""
    spec: list[dict] = []
    for state, i in path:
        c = grammar.choice(state, i)
        for e in c.emit:
            spec.append(copy.deepcopy(e))
        if c.set:
            if not spec:
                raise GrammarError(grammar.name, state, f"choice {c.id!r} to 'set' after something was emitted")
            spec[-1].update(copy.deepcopy(dict(c.set)))
    return spec
