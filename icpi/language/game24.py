"""Game of 24: puzzles, a reference solver, a safe evaluator and a rule-based step checker.

A puzzle is four integers in 1–13; it is solved by an arithmetic expression that uses each
number exactly once with ``+ - * /`` and parentheses and equals 24. Everything here works in
exact rational arithmetic (:class:`fractions.Fraction`):

- :func:`solve` / :func:`is_solvable`: exhaustive search over pairwise combinations (the
  reference solver; it also judges whether a partial state can still reach 24).
- :func:`generate_puzzles`: seeded puzzles, each classified by the solver.
- :func:`evaluate_expression`: a tokenizer and recursive-descent parser for a model's
  answer expression. It never calls ``eval``/``exec``; it accepts numbers, the four
  operators (``×``/``÷`` spelled either way), and parentheses, and nothing else.
- :func:`check_answer`: the expression uses exactly the puzzle's numbers and equals 24.
- :func:`parse_response` / :func:`rule_step_rewards`: read ``StepN: a op b = c (left: …)``
  lines and score each step 3 (sure), 1 (likely) or 0 (impossible), plus 10 for a valid
  final equation, as the ICRL paper's Game of 24 reward does.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from icpi.errors import ConfigError

#: The target value.
TARGET = Fraction(24)
#: Step scores (ICRL's judge scale) and the bonus of a valid final equation.
SURE, LIKELY, IMPOSSIBLE = 3.0, 1.0, 0.0
ANSWER_BONUS = 10.0
#: Longest expression accepted by the evaluator, characters (answers are short).
MAX_EXPRESSION_CHARS = 200

_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "×": "*", "x": "*", "X": "*", "÷": "/"}
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})


class ExpressionError(ValueError):
    """An answer expression that cannot be evaluated (syntax, division by zero, size)."""


# --------------------------------------------------------------------------- solver
def _combine(a: Fraction, b: Fraction) -> Iterator[tuple[Fraction, str]]:
    yield a + b, "+"
    yield a - b, "-"
    yield b - a, "-r"
    yield a * b, "*"
    if b != 0:
        yield a / b, "/"
    if a != 0:
        yield b / a, "/r"


@functools.lru_cache(maxsize=1 << 17)
def _solvable_sorted(values: tuple[Fraction, ...]) -> bool:
    if len(values) == 1:
        return values[0] == TARGET
    for i, j in itertools.combinations(range(len(values)), 2):
        rest = [values[k] for k in range(len(values)) if k not in (i, j)]
        for value, _ in _combine(values[i], values[j]):
            if _solvable_sorted(tuple(sorted([*rest, value]))):
                return True
    return False


def _fmt(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"({v.numerator}/{v.denominator})"


def _search(items: list[tuple[Fraction, str]]) -> str | None:
    if len(items) == 1:
        return items[0][1] if items[0][0] == TARGET else None
    for i, j in itertools.combinations(range(len(items)), 2):
        (a, ea), (b, eb) = items[i], items[j]
        rest = [items[k] for k in range(len(items)) if k not in (i, j)]
        for value, op in _combine(a, b):
            if op == "-r":
                text = f"({eb} - {ea})"
            elif op == "/r":
                text = f"({eb} / {ea})"
            else:
                text = f"({ea} {op} {eb})"
            found = _search([*rest, (value, text)])
            if found is not None:
                return found
    return None


def solve(numbers: Sequence[int | Fraction]) -> str | None:
    """Find an expression over ``numbers`` (each once) that equals 24.

    Args:
        numbers: The numbers (any count ≥ 1).

    Returns:
        One solution (fully parenthesised), or ``None`` if there is none.
    """
    found = _search([(Fraction(n), _fmt(Fraction(n))) for n in numbers])
    if found is not None and found.startswith("(") and found.endswith(")"):
        inner = found[1:-1]
        depth = 0
        for ch in inner:  # strip outer parentheses only if they enclose the whole text
            depth += (ch == "(") - (ch == ")")
            if depth < 0:
                return found
        return inner
    return found


def is_solvable(numbers: Sequence[int | Fraction]) -> bool:
    """Whether ``numbers`` can still reach 24 (memoised on the sorted multiset).

    Args:
        numbers: The numbers left.

    Returns:
        True if some expression over them equals 24.
    """
    if not numbers:
        return False
    return _solvable_sorted(tuple(sorted(Fraction(n) for n in numbers)))


@dataclass(frozen=True)
class Puzzle:
    """One Game of 24 puzzle, classified by the reference solver."""

    numbers: tuple[int, int, int, int]
    """The four numbers, sorted."""
    solvable: bool
    """Whether some expression reaches 24."""
    solution: str | None = None
    """One solution found by the solver (never shown to the model)."""

    @property
    def text(self) -> str:
        """The numbers as the prompt writes them (``"1 4 8 8"``)."""
        return " ".join(str(n) for n in self.numbers)

    @classmethod
    def of(cls, numbers: Sequence[int]) -> Puzzle:
        """Classify given numbers.

        Args:
            numbers: Four integers.

        Returns:
            The puzzle.

        Raises:
            ValueError: If there are not four numbers.
        """
        if len(numbers) != 4:
            raise ValueError(f"a puzzle has four numbers, got {list(numbers)}")
        nums = tuple(sorted(int(n) for n in numbers))
        sol = solve(nums)
        return cls(numbers=nums, solvable=sol is not None, solution=sol)  # type: ignore[arg-type]


def generate_puzzles(
    n: int,
    seed: int = 0,
    *,
    solvable: bool | None = True,
    low: int = 1,
    high: int = 13,
    exclude: Sequence[Sequence[int]] = (),
) -> list[Puzzle]:
    """Draw distinct puzzles with a seeded generator and classify each with the solver.

    Args:
        n: Number of puzzles.
        seed: Seed of the generator (same seed, same list).
        solvable: Keep only solvable (True) or unsolvable (False) puzzles; ``None`` keeps
            both, in the proportion drawn.
        low: Smallest number.
        high: Largest number.
        exclude: Puzzles never drawn (e.g. the prompt's worked examples).

    Returns:
        ``n`` distinct puzzles.

    Raises:
        ValueError: If fewer than ``n`` distinct puzzles of the kind exist.
    """
    rng = random.Random(seed)
    out: list[Puzzle] = []
    seen: set[tuple[int, ...]] = {tuple(sorted(int(x) for x in e)) for e in exclude}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * max(n, 10):
            raise ValueError(f"could not draw {n} distinct puzzles of that kind")
        nums = tuple(sorted(rng.randint(low, high) for _ in range(4)))
        if nums in seen:
            continue
        seen.add(nums)
        p = Puzzle.of(nums)
        if solvable is None or p.solvable == solvable:
            out.append(p)
    return out


# --------------------------------------------------------------------------- evaluator
@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "op", "(" or ")"
    text: str
    value: Fraction | None = None


def tokenize(expr: str) -> list[_Tok]:
    """Split an answer expression into numbers, operators and parentheses.

    Args:
        expr: The expression text.

    Returns:
        The tokens.

    Raises:
        ExpressionError: On any other character or a too long expression.
    """
    text = expr.translate(_MINUS).replace("\\times", "*").replace("\\div", "/")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            if j < len(text) and text[j] == "." and j + 1 < len(text) and text[j + 1].isdigit():
                raise ExpressionError("decimal numbers are not allowed")
            toks.append(_Tok("num", text[i:j], Fraction(int(text[i:j]))))
            i = j
        elif ch in _OPS:
            toks.append(_Tok("op", _OPS[ch]))
            i += 1
        elif ch in "([{":
            toks.append(_Tok("(", "("))
            i += 1
        elif ch in ")]}":
            toks.append(_Tok(")", ")"))
            i += 1
        else:
            raise ExpressionError(f"unexpected character {ch!r}")
    if not toks:
        raise ExpressionError("empty expression")
    return toks


class _Parser:
    """expr := term (('+'|'-') term)* ; term := atom (('*'|'/') atom)* ; atom := num | (expr)."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0
        self.numbers: list[int] = []

    def _peek(self) -> _Tok | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def parse(self) -> Fraction:
        value = self._expr(0)
        if self._peek() is not None:
            raise ExpressionError(f"unexpected {self._peek().text!r}")  # type: ignore[union-attr]
        return value

    def _expr(self, depth: int) -> Fraction:
        value = self._term(depth)
        while (t := self._peek()) is not None and t.kind == "op" and t.text in "+-":
            self.pos += 1
            rhs = self._term(depth)
            value = value + rhs if t.text == "+" else value - rhs
        return value

    def _term(self, depth: int) -> Fraction:
        value = self._atom(depth)
        while (t := self._peek()) is not None and t.kind == "op" and t.text in "*/":
            self.pos += 1
            rhs = self._atom(depth)
            if t.text == "*":
                value = value * rhs
            elif rhs == 0:
                raise ExpressionError("division by zero")
            else:
                value = value / rhs
        return value

    def _atom(self, depth: int) -> Fraction:
        if depth > 20:
            raise ExpressionError("parentheses nested too deeply")
        t = self._peek()
        if t is None:
            raise ExpressionError("expression ends too early")
        self.pos += 1
        if t.kind == "num":
            assert t.value is not None
            self.numbers.append(int(t.text))
            return t.value
        if t.kind == "(":
            value = self._expr(depth + 1)
            close = self._peek()
            if close is None or close.kind != ")":
                raise ExpressionError("missing closing parenthesis")
            self.pos += 1
            return value
        raise ExpressionError(f"unexpected {t.text!r}")


def evaluate_expression(expr: str) -> tuple[Fraction, list[int]]:
    """Evaluate an arithmetic expression exactly, without ``eval``.

    Args:
        expr: Integers, ``+ - * /`` (also ``× ÷ x``) and parentheses; no unary operators.

    Returns:
        The exact value and the integers used, in order.

    Raises:
        ExpressionError: On a malformed expression or a division by zero.
    """
    p = _Parser(tokenize(expr))
    return p.parse(), p.numbers


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on one answer expression."""

    ok: bool
    """Uses exactly the puzzle's numbers and equals 24."""
    value: Fraction | None = None
    """The expression's value (``None`` if it could not be evaluated)."""
    numbers_ok: bool = False
    """Whether it uses exactly the puzzle's numbers, each once."""
    error: str | None = None
    """Why it is not a valid solution."""


def check_answer(expr: str | None, numbers: Sequence[int]) -> AnswerCheck:
    """Check an answer expression against a puzzle.

    Args:
        expr: The expression (``None``: no answer given).
        numbers: The puzzle's numbers.

    Returns:
        The verdict.
    """
    if expr is None or not expr.strip():
        return AnswerCheck(ok=False, error="no answer")
    try:
        value, used = evaluate_expression(expr)
    except ExpressionError as exc:
        return AnswerCheck(ok=False, error=f"malformed: {exc}")
    numbers_ok = Counter(used) == Counter(int(n) for n in numbers)
    if not numbers_ok:
        return AnswerCheck(
            ok=False, value=value, error=f"uses {sorted(used)}, not {sorted(numbers)}"
        )
    if value != TARGET:
        return AnswerCheck(ok=False, value=value, numbers_ok=True, error=f"equals {value}")
    return AnswerCheck(ok=True, value=value, numbers_ok=True)


# --------------------------------------------------------------------------- responses
_STEP = re.compile(
    r"step\s*(\d+)\s*[:.)]?\s*(?P<lhs>(?:(?!step\s*\d|\(\s*left)[^=\n])*?)=\s*"
    r"(?P<res>[-\d/ .]+?)\s*\(\s*left\s*:?\s*(?P<left>[^)]*)\)",
    re.IGNORECASE,
)
#: An answer marker: ``Answer:`` / ``Final answer:`` at the start of a line (after bullets,
#: ``#``, ``*`` or an ``<answer>`` tag), or ``**Answer**:`` anywhere (the paper's one-line
#: format). A sentence that mentions an answer is no marker.
_ANSWER_MARK = re.compile(
    r"(?:^[ \t>*#_-]*(?:<answer>[ \t]*)?|\*\*[ \t]*)(?:final[ \t]+)?answer[ \t]*\**[ \t]*[:：]",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)
_INT = re.compile(r"-?\d+(?:/\d+)?")


@dataclass(frozen=True)
class Step:
    """One ``StepN: a op b = c (left: …)`` of a response."""

    start: int
    """Offset of the step in the response."""
    end: int
    """Offset just after it (its reward tag goes there)."""
    lhs: str
    """The operation (``"4 + 8"``)."""
    result: str
    """The stated result."""
    left: tuple[Fraction, ...]
    """The numbers stated as left."""

    @property
    def text(self) -> str:
        """The step as the judge is shown it (``"4 + 8 = 12 (left: 4 6 12)"``)."""
        left = " ".join(_fmt_step(x) for x in self.left)
        return f"{self.lhs} = {self.result} (left: {left})"


@dataclass(frozen=True)
class ParsedResponse:
    """Steps and final answer read from a Game of 24 response."""

    text: str
    """The response."""
    steps: list[Step] = field(default_factory=list)
    """Steps found, in order."""
    answer: str | None = None
    """The final answer expression (left of ``=``), if any."""
    answer_span: tuple[int, int] | None = None
    """Offsets of the answer (marker to the end of its line): kept when the response is
    cut for a later prompt; its reward tag goes at the end."""


def _fractions(text: str) -> tuple[Fraction, ...]:
    out = []
    for t in _INT.findall(text):
        try:
            out.append(Fraction(t))
        except (ValueError, ZeroDivisionError):
            continue
    return tuple(out)


def _region(text: str) -> tuple[int, int]:
    """Offsets of the last ``<answer>…</answer>`` block's content, else of the whole text."""
    blocks = list(_ANSWER_BLOCK.finditer(text))
    if not blocks:
        return 0, len(text)
    return blocks[-1].start(1), blocks[-1].end(1)


def _answer_candidates(text: str, lo: int, hi: int) -> list[tuple[str, int, int]]:
    """``(expression, start, end)`` after each answer marker between two offsets."""
    out = []
    for m in _ANSWER_MARK.finditer(text, lo, hi):
        begin = m.end()
        stop = text.find("\n", begin, hi)
        stop = hi if stop < 0 else stop
        if not text[begin:stop].strip():  # the expression on the next line
            nxt = text.find("\n", stop + 1, hi) if stop < hi else -1
            begin, stop = stop, (hi if nxt < 0 else nxt)
        segment = text[begin:stop]
        close = segment.lower().find("</answer>")
        if close >= 0:
            stop = begin + close
            segment = segment[:close]
        expr = segment.split("=")[0].replace("$", " ").strip().strip("*").strip()
        if expr:
            out.append((expr, m.start(), stop))
    return out


def parse_response(text: str) -> ParsedResponse:
    """Read the steps and the final answer of a response (model output is data).

    The response may follow the package's format (one ``StepN:`` per line, then an
    ``Answer:`` line) or the paper's (``<answer>**Response** Step1: … **Answer**: …
    </answer>``, possibly on one line); when ``<answer>`` tags are present, the last tagged
    block is read. The answer is the last one after an answer marker (``Answer:`` at the
    start of a line, ``**Answer**:`` anywhere) that is a well-formed expression, else the
    last one after a marker; prose that mentions an answer is ignored.

    Args:
        text: The response.

    Returns:
        The parsed response (missing parts are empty / ``None``).
    """
    text = text or ""
    clean = text.replace("$", " ")  # same offsets, LaTeX math delimiters gone
    lo, hi = _region(clean)
    candidates = _answer_candidates(clean, lo, hi) or (
        _answer_candidates(clean, 0, len(clean)) if (lo, hi) != (0, len(clean)) else []
    )
    chosen = next((c for c in reversed(candidates) if _well_formed(c[0])), None)
    if chosen is None and candidates:
        chosen = candidates[-1]
    end = chosen[1] if chosen is not None else len(clean)
    steps = _steps(clean, lo, min(hi, end)) or _steps(clean, 0, end)
    if chosen is None:
        return ParsedResponse(text=text, steps=steps)
    return ParsedResponse(
        text=text, steps=steps, answer=chosen[0], answer_span=(chosen[1], chosen[2])
    )


def _steps(text: str, lo: int, hi: int) -> list[Step]:
    """The steps between two offsets."""
    return [
        Step(m.start(), m.end(), m.group("lhs").strip(), m.group("res").strip(),
             _fractions(m.group("left")))
        for m in _STEP.finditer(text, lo, max(lo, hi))
    ]  # fmt: skip


def _well_formed(expr: str) -> bool:
    try:
        evaluate_expression(_normal(expr))
    except ExpressionError:
        return False
    return True


def _normal(expr: str) -> str:
    return re.sub(r"\s+", "", expr.translate(_MINUS)).replace("×", "*").replace("÷", "/")


def final_answer(text: str) -> str | None:
    """The final answer expression of a response, whitespace removed (a vote key).

    Only a well-formed arithmetic expression counts as an answer (right or wrong); prose
    or a truncated expression after ``Answer:`` is no answer.

    Args:
        text: The response.

    Returns:
        The expression without spaces, or ``None``.
    """
    ans = parse_response(text).answer
    if ans is None:
        return None
    key = _normal(ans)
    try:
        evaluate_expression(key)
    except ExpressionError:
        return None
    return key


_LITERAL = re.compile(r"\(?(-?\d+)(?:/(\d+))?\)?")


def _literal(text: str) -> Fraction | None:
    """An integer or fraction literal (``8``, ``8/3``, ``(8/3)``, ``-5``), else ``None``."""
    m = _LITERAL.fullmatch(text)
    if m is None or (text.startswith("(") != text.endswith(")")):
        return None
    try:
        return Fraction(int(m.group(1)), int(m.group(2) or 1))
    except ZeroDivisionError:
        return None


def read_step(lhs: str) -> list[tuple[Fraction, Fraction, Fraction]]:
    """Every reading of a step's operation as ``a op b`` with number or fraction operands.

    ``"3 - 8/3"`` reads as 3 − 8/3; ``"8 / 1/3"`` reads as 8 ÷ (1/3) and as (8/1) ÷ 3.

    Args:
        lhs: The operation text of a step.

    Returns:
        ``(a, b, value)`` per reading, in the order of the operator's position.
    """
    text = re.sub(r"\s+", "", lhs.translate(_MINUS)).replace("×", "*").replace("÷", "/")
    text = text.replace("x", "*").replace("X", "*").replace("$", "")
    out = []
    for i in range(1, len(text) - 1):
        op = text[i]
        if op not in "+-*/":
            continue
        a, b = _literal(text[:i]), _literal(text[i + 1 :])
        if a is None or b is None:
            continue
        if op == "+":
            value = a + b
        elif op == "-":
            value = a - b
        elif op == "*":
            value = a * b
        elif b == 0:
            continue
        else:
            value = a / b
        out.append((a, b, value))
    return out


def rule_step_rewards(parsed: ParsedResponse, numbers: Sequence[int]) -> list[float]:
    """Score each step with the exact solver (3 = sure, 0 = impossible; never unsure).

    A step scores 3 when its two operands are among the numbers left (fractions included),
    its arithmetic is right, its ``left`` list is exactly the true remainder and that
    remainder can still reach 24; anything else scores 0 (an invented ``left`` list, a
    foreign operand, wrong arithmetic, a dead end). A broken step does not move the game:
    the next step is judged from the numbers truly left.

    Args:
        parsed: The parsed response.
        numbers: The puzzle's numbers.

    Returns:
        One score per step.
    """
    remaining: list[Fraction] = [Fraction(n) for n in numbers]
    scores: list[float] = []
    for step in parsed.steps:
        stated = _fractions(step.result)
        pool = Counter(remaining)
        legal = None
        for a, b, value in read_step(step.lhs):
            need = Counter([a, b])
            available = all(pool[x] >= c for x, c in need.items())
            if len(stated) == 1 and stated[0] == value and available:
                legal = (need, value)
                break
        if legal is None:
            scores.append(IMPOSSIBLE)
            continue
        pool.subtract(legal[0])
        true_left = sorted([*pool.elements(), legal[1]])
        ok = sorted(step.left) == true_left and is_solvable(true_left)
        scores.append(SURE if ok else IMPOSSIBLE)
        remaining = true_left
    return scores


def answer_key(expr: str | None) -> str | None:
    """The task's answer of an expression: the value it reaches with the numbers it uses.

    ``(6-4)*(4+8)`` and ``(4+8)*(6-4)`` both give ``"24 using 4 4 6 8"``: ME-ICPO votes on
    what an answer reaches, as a math vote compares final values, not on its spelling.

    Args:
        expr: An answer expression (``None``: no answer).

    Returns:
        The key, or ``None`` when the expression cannot be evaluated.
    """
    if expr is None:
        return None
    try:
        value, used = evaluate_expression(expr)
    except ExpressionError:
        return None
    return f"{value} using {' '.join(map(str, sorted(used)))}"


# --------------------------------------------------------------------------- demonstrations
def _fmt_step(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def solution_steps(numbers: Sequence[int]) -> list[str] | None:
    """A worked solution in the task's step format (an expert demonstration).

    Args:
        numbers: Four numbers.

    Returns:
        ``["Step1: … (left: …)", …, "Answer: … = 24"]``, or ``None`` if unsolvable.
    """

    def search(items: list[tuple[Fraction, str]], steps: list[str]) -> list[str] | None:
        if len(items) == 1:
            return steps if items[0][0] == TARGET else None
        for i, j in itertools.combinations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            for value, op in _combine(a, b):
                x, y, sym = (b, a, op[0]) if op.endswith("r") else (a, b, op)
                ex, ey = (eb, ea) if op.endswith("r") else (ea, eb)
                if not is_solvable([v for v, _ in rest] + [value]):
                    continue
                left = sorted([v for v, _ in rest] + [value])
                line = (
                    f"Step{len(steps) + 1}: {_fmt_step(x)} {sym} {_fmt_step(y)} = "
                    f"{_fmt_step(value)} (left: {' '.join(_fmt_step(v) for v in left)})"
                )
                found = search([*rest, (value, f"({ex} {sym} {ey})")], [*steps, line])
                if found is not None:
                    return found
        return None

    items = [(Fraction(n), str(n)) for n in numbers]
    steps = search(items, [])
    expr = solve(numbers)
    if steps is None or expr is None:
        return None
    return [*steps, f"Answer: {expr} = 24"]


# --------------------------------------------------------------------------- standard split
#: Ranks of the standard test split (Tree of Thoughts and the ICRL paper: indices 900–999).
TOT_TEST_RANKS = (901, 1000)


@functools.lru_cache(maxsize=1)
def standard_ranking() -> tuple[tuple[int, int, int, int], ...]:
    """The 1362 solvable puzzles in the public difficulty order (rank 1 first).

    The order is Tree of Thoughts' ``24.csv`` (MIT licence, see ``data/LICENSE-tot24.txt``):
    puzzles sorted by the average time people took to solve them on 4nums.com. It is
    human data, not derivable from a solver; the solver only confirms that the list is
    exactly the 1362 solvable puzzles of four numbers in 1–13.

    Returns:
        The puzzles, sorted numbers each, rank order.
    """
    text = (importlib.resources.files("icpi.language") / "data" / "game24_ranks.txt").read_text()
    rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return tuple(tuple(sorted(int(x) for x in r)) for r in rows)  # type: ignore[misc]


@dataclass(frozen=True)
class RankedPuzzle:
    """A puzzle with its difficulty rank (1 = easiest)."""

    rank: int
    """Rank in its list."""
    numbers: tuple[int, ...]
    """The four numbers, sorted."""


def _numbers_of(value: object, where: str) -> tuple[int, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) != 4:
        raise ConfigError(f"{where}: a puzzle is four integers, got {value!r}")
    try:
        nums = tuple(sorted(int(str(x)) for x in items))
    except ValueError as exc:
        raise ConfigError(f"{where}: a puzzle is four integers, got {value!r}") from exc
    if any(n < 0 or n > 1_000_000 for n in nums):
        raise ConfigError(f"{where}: numbers must be in 0–1000000, got {value!r}")
    return nums


def load_puzzles(path: str | Path) -> list[RankedPuzzle]:
    """Read Game of 24 puzzles from a CSV or JSONL file.

    CSV: a header with a ``Puzzles`` (or ``puzzle`` / ``numbers``) column holding four
    space-separated integers and an optional ``Rank`` column — Tree of Thoughts' ``24.csv``
    reads as is. JSONL: one object per line with ``numbers`` (a list of four integers or a
    string) and an optional ``rank``. Without ranks, the row number (from 1) is the rank.

    Args:
        path: The file (``.csv`` or ``.jsonl``/``.json``).

    Returns:
        The puzzles sorted by rank.

    Raises:
        ValueError: On an unreadable row, a duplicated rank or an empty file (naming it).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such puzzle file")
    out: list[RankedPuzzle] = []
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = {c.lower().strip(): c for c in reader.fieldnames or []}
            col = next((cols[c] for c in ("puzzles", "puzzle", "numbers") if c in cols), None)
            if col is None:
                raise ConfigError(f"{p}: no 'Puzzles' (or 'numbers') column in the header")
            rank_col = cols.get("rank")
            for i, row in enumerate(reader, 1):
                where = f"{p}:{i + 1}"
                rank = int(row[rank_col]) if rank_col and row.get(rank_col) else i
                out.append(RankedPuzzle(rank, _numbers_of(row[col], where)))
    else:
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{p}:{i}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON: {exc}") from exc
            if not isinstance(row, dict) or "numbers" not in row:
                raise ConfigError(f"{where}: needs 'numbers'")
            rank = int(row.get("rank", len(out) + 1))
            out.append(RankedPuzzle(rank, _numbers_of(row["numbers"], where)))
    if not out:
        raise ConfigError(f"{p}: no puzzles")
    ranks = [r.rank for r in out]
    if len(set(ranks)) != len(ranks):
        raise ConfigError(f"{p}: duplicated ranks")
    return sorted(out, key=lambda r: r.rank)
