"""Cheap text signals that move the tier: complexity, privacy (secrets and PII) and session (follow-ups).

All pure functions of strings: regexes and counts, no model. Each returns the tier move and the names of what fired,
so a decision can explain itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

# -- complexity -----------------------------------------------------------------------------------------------------

_SCOPE = re.compile(
    r"\b(across|throughout)\s+(the\s+|our\s+|my\s+|this\s+)?(whole\s+|entire\s+)?(code\s*base|codebase|repo|repository|"
    r"project|monorepo|services|system|modules|files)\b|\b(entire|whole)\s+(code\s*base|codebase|repo|repository|"
    r"project|monorepo|application|app|system)\b|\b(all|many|multiple|several|dozens of|hundreds of)\s+"
    r"(files|modules|services|packages|repos|repositories|microservices)\b|\bevery\s+(file|module|service|package)\b",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(design|architect\w*|trade-?offs?|prove|proof|step[- ]by[- ]step|reason about|formally|invariants?|"
    r"correctness|race conditions?|deadlocks?|concurrency model|consistency model|distributed|scal(e|able|ability) to|"
    r"migration plan|plan (the|a|our) migration|root cause|compare (the )?approaches|pros and cons)\b",
    re.IGNORECASE,
)
_BIG = re.compile(  # a large unit of work: "the whole class", "a full test suite", "~40 components", "800-line utils"
    r"\b(whole|entire|full|complete)\s+(\w+\s+){0,2}?(class|file|module|package|suite|app|application|flow|service|"
    r"stack|pipeline|sdk|api|backend|frontend|system|project|repo|migration)\b|"
    r"(~|\babout\s+|\bover\s+)?\b([1-9]\d+)\+?\s+(\w+\s+)?(files|modules|components|services|microservices|jobs|"
    r"endpoints|functions|methods|classes|tables|repos|packages|pages|screens|handlers|workflows|lambdas)\b|"
    r"\b\d{3,}[- ]lines?\b|\b\d{3,}\s+lines\b",
    re.IGNORECASE,
)
_PATH = re.compile(r"(?<![\w/])(?:[\w.-]+/)+[\w.-]*")
_PLANNING = re.compile(  # asks for multi-step work or a justified answer rather than a lookup
    r"\b(justify|work out|figure out|threat[- ]model\w*|audit|strategy|plan|roadmap|walk (me )?through|step through|"
    r"in depth|thorough(ly)?|end[- ]to[- ]end|zero[- ]downtime|root[- ]cause|why exactly)\b",
    re.IGNORECASE,
)
_ITEM_SEP = re.compile(r",|;|\band\b|\bwith\b|^\s*(?:[-*\u2022]|\d+[.)])\s+", re.IGNORECASE | re.MULTILINE)
_SIMPLE = re.compile(r"\b(quick(ly)?|just|simple|one[- ]liner|short answer|tl;?dr|briefly)\b", re.IGNORECASE)
TRACE_LINE = re.compile(
    r"^\s*(File \".+\", line \d+|at [\w.$<>]+\(.*\)|[\w/.-]+\.(go|rs|js|ts|c|cpp|java|py):\d+|#\d+\s+0x[0-9a-f]+|"
    r"Traceback \(most recent call last\)|goroutine \d+ \[)",
    re.IGNORECASE | re.MULTILINE,
)
_CODE_LINE = re.compile(r"[{};=()\[\]<>]|^\s{2,}\S|^\s*(def|class|fn|func|function|import|from|return|if|for)\b")


@dataclass
class ComplexitySignal:
    """How far to move the route's default tier (-1, 0, +1 or +2), the lowest tier index the query may get, and why."""

    delta: int = 0
    floor: int = 0
    fired: list[str] = field(default_factory=list)
    code_lines: int = 0
    trace_lines: int = 0


def count_code_lines(text: str) -> tuple[int, int]:
    """(lines that look like code, lines that look like a stack trace) in a pasted query."""
    lines = text.splitlines()
    trace = len(TRACE_LINE.findall(text))
    code = sum(1 for ln in lines[1:] if ln.strip() and _CODE_LINE.search(ln))
    return code, trace


def requirement_count(text: str) -> tuple[int, int]:
    """(listed requirements, words) of the prose part of a query: the lines that are not pasted code or trace.

    A request that enumerates many features ("a table with sorting, paging, a sticky header, selection and CSV
    export") asks for long-form output even when every part is simple."""
    lines = text.splitlines() or [""]
    prose = lines[:1] + [ln for ln in lines[1:] if ln.strip() and not _CODE_LINE.search(ln) and not TRACE_LINE.search(ln)]
    body = "\n".join(prose)
    return len(_ITEM_SEP.findall(body)) + 1, len(body.split())


def complexity_signal(text: str, long_code_lines: int = 40, long_trace_lines: int = 15, many_requirements: int = 5,
                      requirement_words: int = 25) -> ComplexitySignal:
    """Read scope, pasted code/trace length and reasoning cues.

    Up one tier each for: a codebase-wide or large scope (the whole codebase, several paths, "~40 components", a
    "full test suite"), a long paste, and reasoning or planning cues (three or more distinct cues count once more).
    Down one only for an explicitly simple ask ("quick", "one-liner") that is short and pastes nothing.
    """
    sig = ComplexitySignal()
    sig.code_lines, sig.trace_lines = count_code_lines(text)
    up = 0
    big = _BIG.search(text)
    paths = {m.group(0).rstrip("/.") for m in _PATH.finditer(text) if "://" not in text[max(0, m.start() - 3):m.end()]}
    if _SCOPE.search(text):
        up += 1
        sig.fired.append("scope:codebase")
    elif big or len(paths) >= 3:
        up += 1
        sig.fired.append("scope:" + (big.group(0).strip().lower()[:30] if big else f"{len(paths)} paths"))
    else:
        items, prose_words = requirement_count(text)
        if items >= many_requirements and prose_words >= requirement_words:
            up += 1
            sig.fired.append(f"scope:{items} requirements")
    if sig.code_lines >= long_code_lines or sig.trace_lines >= long_trace_lines:
        up += 1
        sig.fired.append(f"paste:{sig.code_lines}code/{sig.trace_lines}trace lines")
    cues = {m.group(0).lower() for m in _REASONING.finditer(text)} | {m.group(0).lower() for m in _PLANNING.finditer(text)}
    if cues:
        up += 1 if len(cues) < 3 else 2
        sig.fired.append("reasoning:" + ",".join(sorted(cues))[:60])
    if sig.code_lines >= 3 or sig.trace_lines >= 2 or (sig.code_lines >= 1 and "```" in text):
        sig.floor = 1  # pasted code or a trace has to be read and reasoned about: never the lookup tier
    words = len(text.split())
    if not up and _SIMPLE.search(text) and words <= 12 and sig.code_lines == 0 and not sig.floor:
        sig.delta = -1
        sig.fired.append("simple-ask")
        return sig
    sig.delta = min(up, 2)
    return sig


# -- coding evidence ------------------------------------------------------------------------------------------------

_CODE_EVIDENCE = re.compile(
    r"`|\w\(\)|=>|::|\$_\w|\b[\w-]+\.(py|ts|tsx|js|jsx|mjs|go|rs|java|kt|rb|php|cs|cpp|cc|hpp|swift|sql|ya?ml|toml|sh|tf|"
    r"gradle|lua|dart|ex|exs|vue|svelte|ipynb)\b|(?<![\w.])\.(gitignore|dockerignore|env|npmrc|bashrc|zshrc)\b|"
    r"\b(javascript|typescript|kotlin|golang|c\+\+|c#|php|django|flask|fastapi|react|vue|angular|svelte|next\.?js|"
    r"node\.?js|npm|yarn|pnpm|pip|docker\w*|kubernetes|k8s|kubectl|helm|terraform|git|github|gitlab|postgres\w*|mysql|"
    r"sqlite|redis|kafka|unity|godot|arduino|esp32|wordpress|laravel|spring|\.net|linq|pandas|numpy|pytorch|"
    r"tensorflow|bash|powershell|nix|regex|endpoint|stack ?trace|readme|docstring|orm|jvm|gcc|clang|cmake|makefile|"
    r"webpack|vite|eslint|pytest|jest|junit|codebase|oauth|jwt|xss|csrf|goroutine|mutex|graphql|grpc|websocket|"
    r"segfault|nullpointer\w*|refactor\w*|oomkilled|crashloopbackoff)\b",
    re.IGNORECASE,
)


def code_evidence(text: str) -> list[str]:
    """Distinct words or marks in ``text`` that only appear in requests about code: language, framework and tool
    names, code punctuation, file names. Off-topic requests almost never carry them (1 of 61 on two blind sets), so
    they let a low-confidence query stay in scope instead of being rejected."""
    return sorted({m.group(0).lower() for m in _CODE_EVIDENCE.finditer(text)})


# -- privacy --------------------------------------------------------------------------------------------------------

_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private-key", re.compile(r"-----BEGIN (RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY( BLOCK)?-----")),
    ("aws-access-key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github-token", re.compile(r"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{22,}\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("openai-key", re.compile(r"\bsk-(proj-)?[A-Za-z0-9_-]{20,}\b")),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("stripe-key", re.compile(r"\b(sk|rk)_(live|test)_[0-9a-zA-Z]{20,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b")),
    ("connection-string-password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/]{3,}@[^\s/]+", re.IGNORECASE)),
    ("password-assignment", re.compile(
        r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+_)*(password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|"
        r"client[_-]?secret)(?![A-Za-z0-9])"
        r"\s*[:=]\s*['\"]?(?!\s*(os\.|process\.env|getenv|\$\{|<|\*+|x+\b|\.\.\.|None|null|''|\"\"))[^\s'\"]{6,}",
        re.IGNORECASE)),
]
_PII_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@(?!example\.(com|org|net)\b)[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("us-ssn", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    ("phone", re.compile(r"(?<![\w.])\+\d{1,3}[\s-]?\(?\d{1,4}\)?[\s-]?\d{3,4}[\s-]?\d{3,4}\b")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}\b")),
]
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def _luhn(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        alt = not alt
    return total % 10 == 0


def privacy_signal(text: str) -> list[str]:
    """Names of the kinds of secrets or personal data found (empty list: nothing found). Never returns the match."""
    found = [name for name, pat in _SECRET_PATTERNS if pat.search(text)]
    found += [f"pii:{name}" for name, pat in _PII_PATTERNS if pat.search(text)]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn(digits) and len(set(digits)) > 1:
            found.append("pii:card-number")
            break
    return found


# -- session --------------------------------------------------------------------------------------------------------

_FAILED = re.compile(
    r"\b(that|this|it|your (fix|answer|code|suggestion|solution))\s+(didn'?t|did not|doesn'?t|does not|still doesn'?t|"
    r"won'?t|isn'?t)\s+(work|help|compile|fix|run|pass)|\bstill (fails?|failing|broken|crash\w*|not working|the same "
    r"error|get(ting)? the same)|\b(same|new) error\b|\bnot working\b|\bwrong again\b|\bthat'?s (wrong|not right|"
    r"incorrect)\b|\bno,? (that|it)'?s? (wrong|not it)\b|\btry again\b",
    re.IGNORECASE,
)
_FOLLOW_UP = re.compile(
    r"^\s*(ok(ay)?|yes|yep|sure|go ahead|do it|now|then|also|and|great|thanks?,?|perfect|next|continue|commit it|ship it|"
    r"apply (it|that)|what about|how about|and (the|what)|same for|can you also|now do)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9_]+")


@dataclass
class SessionTurn:
    """A previous user turn: its text and, when known, the tier it was routed to."""

    query: str
    tier: str | None = None


@dataclass
class SessionSignal:
    """``escalate``: go one tier above the previous turn; ``keep_tier``: do not drop below it."""

    escalate: bool = False
    keep_tier: str | None = None
    fired: list[str] = field(default_factory=list)


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def session_signal(text: str, history: Sequence[SessionTurn], tier_order: Sequence[str],
                   short_words: int = 8, reask_overlap: float = 0.6) -> SessionSignal:
    """Look at the current query against the previous turns.

    - "that didn't work" / "still failing", or a near-verbatim re-ask of an earlier turn: escalate one tier above the
      hardest recent turn.
    - A short follow-up ("commit it", "now the tests") inside a task: keep the task's tier (the highest of the last
      turns) instead of letting the short text drop to the cheapest tier.
    """
    sig = SessionSignal()
    if not history:
        return sig
    recent = list(history)[-3:]
    known = [t.tier for t in recent if t.tier in tier_order]
    task_tier = max(known, key=tier_order.index) if known else None
    if _FAILED.search(text):
        sig.escalate = True
        sig.fired.append("session:failed-attempt")
    elif any(_jaccard(text, t.query) >= reask_overlap for t in recent) and len(text.split()) >= 3:
        sig.escalate = True
        sig.fired.append("session:re-asked")
    words = len(text.split())
    if task_tier and (sig.escalate or words <= short_words or _FOLLOW_UP.search(text)):
        sig.keep_tier = task_tier
        if not sig.escalate:
            sig.fired.append(f"session:follow-up keeps {task_tier}")
    return sig
