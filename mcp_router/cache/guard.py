"""The verification guard: pure rules that refuse a semantic cache hit when two queries differ in what matters.

An embedding puts "convert int to string" and "convert string to int" (or `--max-heads` and `--max-cost`) next to
each other, so a cosine threshold alone serves wrong answers. Before a near neighbour is served, `check_pair` compares
the stored query with the new one and refuses when they differ in:

- programming language, framework or library (``languages``);
- identifiers and `code` spans (``identifier``);
- command-line flags (``flag``);
- numbers and versions (``number``);
- negation (``negation``);
- direction and antonym pairs: to/from, read/write, add/remove, enable/disable, min/max, ... (``antonym``);
- the order of a conversion or move: "X to Y" vs "Y to X" (``order``);
- named entities present on both sides but different (``entity``).

Every refusal names the rule and the token that caused it, so a miss can be explained. Nothing here does I/O or
loads a model: the rules are small tables read by a few generic functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# --------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------

#: Technology names (languages, frameworks, libraries, tools) → canonical name. Aliases map to one name so that
#: "js" and "JavaScript" count as the same technology.
TECH_ALIASES: dict[str, str] = {
    # languages
    "python": "python", "python3": "python", "py": "python", "python2": "python",
    "javascript": "javascript", "js": "javascript", "ecmascript": "javascript", "es6": "javascript",
    "typescript": "typescript", "ts": "typescript",
    "golang": "go",
    "rust": "rust", "java": "java", "kotlin": "kotlin", "scala": "scala", "groovy": "groovy", "clojure": "clojure",
    "c#": "csharp", "csharp": "csharp", "c++": "cpp", "cpp": "cpp", "objective-c": "objc", "objc": "objc",
    "ruby": "ruby", "php": "php", "perl": "perl", "swift": "swift", "dart": "dart", "haskell": "haskell",
    "elixir": "elixir", "erlang": "erlang", "lua": "lua", "julia": "julia", "matlab": "matlab", "fortran": "fortran",
    "cobol": "cobol", "ocaml": "ocaml", "f#": "fsharp", "zig": "zig", "nim": "nim", "crystal": "crystal",
    "bash": "bash", "zsh": "zsh", "fish": "fish", "powershell": "powershell", "sh": "sh", "vba": "vba",
    "sql": "sql", "mysql": "mysql", "postgres": "postgres", "postgresql": "postgres", "sqlite": "sqlite",
    "sqlite3": "sqlite", "mongodb": "mongodb", "mongo": "mongodb", "redis": "redis", "oracle": "oracle",
    "html": "html", "css": "css", "scss": "scss", "sass": "scss", "wasm": "wasm", "webassembly": "wasm",
    "solidity": "solidity", "assembly": "assembly", "verilog": "verilog", "vhdl": "vhdl", "prolog": "prolog",
    # frameworks and libraries
    "react": "react", "reactjs": "react", "vue": "vue", "vuejs": "vue", "angular": "angular", "angularjs": "angular",
    "svelte": "svelte", "nextjs": "nextjs", "next.js": "nextjs", "nuxt": "nuxt", "jquery": "jquery",
    "node": "node", "nodejs": "node", "node.js": "node", "deno": "deno", "bun": "bun", "express": "express",
    "django": "django", "flask": "flask", "fastapi": "fastapi", "rails": "rails", "laravel": "laravel",
    "symfony": "symfony", "spring": "spring", "springboot": "spring", ".net": "dotnet", "dotnet": "dotnet",
    "asp.net": "aspnet", "numpy": "numpy", "pandas": "pandas", "polars": "polars", "scipy": "scipy",
    "matplotlib": "matplotlib", "seaborn": "seaborn", "sklearn": "sklearn", "scikit-learn": "sklearn",
    "tensorflow": "tensorflow", "keras": "keras", "pytorch": "pytorch", "torch": "pytorch", "jax": "jax",
    "sqlalchemy": "sqlalchemy", "pydantic": "pydantic", "requests": "requests", "httpx": "httpx",
    "asyncio": "asyncio", "pytest": "pytest", "unittest": "unittest", "jest": "jest", "mocha": "mocha",
    "junit": "junit", "tokio": "tokio", "serde": "serde", "lodash": "lodash", "axios": "axios",
    "webpack": "webpack", "vite": "vite", "babel": "babel", "eslint": "eslint", "prettier": "prettier",
    "docker": "docker", "kubernetes": "kubernetes", "k8s": "kubernetes", "terraform": "terraform",
    "ansible": "ansible", "git": "git", "svn": "svn", "mercurial": "mercurial", "npm": "npm", "yarn": "yarn",
    "pnpm": "pnpm", "pip": "pip", "conda": "conda", "poetry": "poetry", "cargo": "cargo", "maven": "maven",
    "gradle": "gradle", "cmake": "cmake", "make": "make", "nginx": "nginx", "apache": "apache",
    "linux": "linux", "windows": "windows", "macos": "macos", "mac": "macos", "osx": "macos", "ubuntu": "ubuntu",
    "debian": "debian", "android": "android", "ios": "ios", "aws": "aws", "azure": "azure", "gcp": "gcp",
    "vim": "vim", "emacs": "emacs", "vscode": "vscode", "excel": "excel", "graphql": "graphql", "grpc": "grpc",
    "json": "json", "yaml": "yaml", "xml": "xml", "toml": "toml", "csv": "csv", "protobuf": "protobuf",
    "kafka": "kafka", "spark": "spark", "hadoop": "hadoop", "elasticsearch": "elasticsearch", "lancedb": "lancedb",
    "tailwind": "tailwind", "bootstrap": "bootstrap", "flutter": "flutter", "unity": "unity", "qt": "qt",
    "opencv": "opencv", "selenium": "selenium", "playwright": "playwright", "celery": "celery",
}

#: A library or tool implies its language: "install a package with pip" and "install a Python package with pip"
#: ask the same thing, while pandas vs polars still differ.
TECH_IMPLIES: dict[str, str] = {
    "pip": "python", "conda": "python", "poetry": "python", "numpy": "python", "pandas": "python",
    "polars": "python", "scipy": "python", "matplotlib": "python", "seaborn": "python", "sklearn": "python",
    "django": "python", "flask": "python", "fastapi": "python", "pytest": "python", "unittest": "python",
    "pydantic": "python", "sqlalchemy": "python", "asyncio": "python", "requests": "python", "httpx": "python",
    "celery": "python", "pytorch": "python", "tensorflow": "python", "keras": "python", "jax": "python",
    "npm": "javascript", "yarn": "javascript", "pnpm": "javascript", "react": "javascript", "vue": "javascript",
    "angular": "typescript", "svelte": "javascript", "nextjs": "javascript", "jquery": "javascript",
    "node": "javascript", "express": "javascript", "jest": "javascript", "mocha": "javascript",
    "lodash": "javascript", "axios": "javascript", "webpack": "javascript", "vite": "javascript",
    "cargo": "rust", "tokio": "rust", "serde": "rust", "maven": "java", "gradle": "java", "junit": "java",
    "spring": "java", "rails": "ruby", "laravel": "php", "symfony": "php", "aspnet": "csharp", "dotnet": "csharp",
    "flutter": "dart",
}

#: Short or common words that name a language only in a code context ("in Go", "Go code", "C program").
AMBIGUOUS_TECH: dict[str, str] = {"go": "go", "c": "c", "r": "r", "d": "d", "spring": "spring", "express": "express",
                                  "make": "make", "node": "node", "mac": "macos", "unity": "unity"}
_TECH_CONTEXT_BEFORE = {"in", "with", "using", "use", "learn", "learning", "vs", "and", "or"}
_TECH_CONTEXT_AFTER = {"code", "program", "programs", "programming", "language", "lang", "module", "modules",
                       "package", "struct", "structs", "slice", "slices", "map", "maps", "function", "functions",
                       "routine", "routines", "compiler", "library", "app", "apps", "script", "file", "files",
                       "project", "developer", "developers", "version", "pointer", "pointers", "macro", "macros",
                       "array", "arrays", "string", "strings", "vs", "and", "or"}

#: Antonym and direction pairs: if one query uses one pole and the other query the opposite pole, they ask
#: different things. Each entry lists the word forms of each pole.
ANTONYM_POLES: list[tuple[str, str]] = [
    ("read", "write"), ("add", "remove"), ("enable", "disable"), ("min", "max"), ("minimum", "maximum"),
    ("first", "last"), ("ascending", "descending"), ("shallow", "deep"), ("encode", "decode"),
    ("encrypt", "decrypt"), ("compress", "decompress"), ("serialize", "deserialize"), ("upload", "download"),
    ("import", "export"), ("push", "pull"), ("open", "close"), ("increase", "decrease"), ("increment", "decrement"),
    ("uppercase", "lowercase"), ("upper", "lower"), ("before", "after"), ("left", "right"), ("show", "hide"),
    ("lock", "unlock"), ("zip", "unzip"), ("install", "uninstall"), ("insert", "delete"), ("get", "set"),
    ("input", "output"), ("client", "server"), ("horizontal", "vertical"), ("horizontally", "vertically"),
    ("local", "remote"), ("public", "private"), ("sync", "async"), ("synchronous", "asynchronous"),
    ("true", "false"), ("inner", "outer"), ("union", "intersection"), ("prefix", "suffix"), ("head", "tail"),
    ("row", "column"), ("key", "value"), ("lazy", "eager"), ("mutable", "immutable"), ("static", "dynamic"),
    ("absolute", "relative"), ("include", "exclude"), ("allow", "deny"), ("accept", "reject"),
    ("forward", "backward"), ("next", "previous"), ("older", "newer"), ("oldest", "newest"), ("old", "new"),
    ("largest", "smallest"), ("biggest", "smallest"), ("highest", "lowest"), ("greater", "less"),
    ("above", "below"), ("top", "bottom"), ("start", "stop"), ("start", "end"), ("begin", "end"),
    ("beginning", "end"), ("up", "down"), ("start", "finish"), ("success", "failure"), ("pass", "fail"),
    ("valid", "invalid"), ("visible", "hidden"), ("connect", "disconnect"), ("mount", "unmount"),
    ("subscribe", "unsubscribe"), ("register", "unregister"), ("attach", "detach"), ("merge", "split"),
    ("join", "split"), ("expand", "collapse"), ("stage", "unstage"), ("freeze", "unfreeze"), ("pack", "unpack"),
    ("wrap", "unwrap"), ("escape", "unescape"), ("quote", "unquote"), ("follow", "unfollow"), ("like", "dislike"),
    ("buy", "sell"), ("win", "lose"), ("gain", "lose"), ("love", "hate"), ("best", "worst"), ("good", "bad"),
    ("advantages", "disadvantages"), ("pros", "cons"), ("positive", "negative"), ("rich", "poor"),
    ("cheap", "expensive"), ("fast", "slow"), ("faster", "slower"), ("easy", "hard"), ("easiest", "hardest"),
    ("male", "female"), ("men", "women"), ("man", "woman"), ("boy", "girl"), ("boys", "girls"),
    ("husband", "wife"), ("boyfriend", "girlfriend"), ("father", "mother"), ("son", "daughter"),
    ("north", "south"), ("east", "west"), ("past", "future"), ("yesterday", "tomorrow"), ("day", "night"),
    ("morning", "evening"), ("summer", "winter"), ("hot", "cold"), ("heavy", "light"), ("long", "short"),
    ("longest", "shortest"), ("high", "low"), ("big", "small"), ("large", "small"), ("more", "less"),
    ("most", "least"), ("many", "few"), ("always", "never"), ("everything", "nothing"), ("all", "none"),
    ("legal", "illegal"), ("safe", "unsafe"), ("happy", "sad"), ("friend", "enemy"), ("increase", "reduce"),
    ("gain", "loss"), ("profit", "loss"), ("import", "export"), ("inside", "outside"), ("internal", "external"),
    ("send", "receive"), ("sender", "receiver"), ("request", "response"), ("parent", "child"),
    ("parents", "children"), ("ancestor", "descendant"), ("src", "dst"), ("source", "destination"),
    ("debug", "release"), ("dev", "prod"), ("development", "production"), ("frontend", "backend"),
    ("front-end", "back-end"), ("odd", "even"), ("positive", "negative"), ("signed", "unsigned"),
    ("lazy", "strict"), ("soft", "hard"), ("undo", "redo"), ("in", "out"),
]

#: Direction markers used to read "X to Y" edges. ``from`` reverses the edge ("int from string" = string → int).
_FORWARD_MARKERS = {"to", "into", "->", "→", "2", "towards"}
_BACKWARD_MARKERS = {"from"}

#: Words that do not carry the content of a question. Kept short on purpose: too many stop words hide differences.
STOPWORDS = frozenset(
    """a an the and or of in on at by for with to from into is are was were be been being am do does did doing have has
    had having i me my we our you your he she it its they them their this that these those there here what which who
    whom whose when where why how can could should would will shall may might must if then than so as about any some
    such just also very really get got gets way ways best good using use used one thing things much many lot lots
    out up please vs versus etc possible like make does is it's im i'm want need know tell someone anyone something
    anything""".split()
)

_NEGATIONS = {"not", "no", "never", "without", "cannot", "can't", "dont", "don't", "doesnt", "doesn't", "isnt",
              "isn't", "arent", "aren't", "wasnt", "wasn't", "werent", "weren't", "wont", "won't", "didnt", "didn't",
              "shouldnt", "shouldn't", "couldnt", "couldn't", "wouldnt", "wouldn't", "none", "neither", "nor",
              "nothing", "nobody", "hasnt", "hasn't", "havent", "haven't", "aint", "ain't", "mustn't", "needn't",
              "unable", "lack", "lacks", "lacking", "excluding", "except", "neednt", "mustnt"}

# "one", "once", "single", "half" are left out: "which one", "one of the best" are not quantities.
_WORD_NUMBERS = {"zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                 "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                 "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
                 "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
                 "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000",
                 "twice": "2", "triple": "3"}

#: Synonyms folded before comparing conversion edges, so "integer into a string" reverses "str to int".
_EDGE_SYNONYMS = {"integer": "int", "integers": "int", "ints": "int", "str": "string", "strings": "string",
                  "dictionary": "dict", "dictionaries": "dict", "dicts": "dict", "lists": "list", "arrays": "array",
                  "bytes": "byte", "floats": "float", "double": "float", "tuples": "tuple", "chars": "char",
                  "character": "char", "characters": "char", "objects": "object", "numbers": "number",
                  "datetimes": "datetime", "timestamps": "timestamp", "dataframes": "dataframe", "df": "dataframe",
                  "celsius": "celsius", "fahrenheit": "fahrenheit", "hex": "hex", "hexadecimal": "hex",
                  "binary": "binary", "decimal": "decimal", "json": "json", "yaml": "yaml", "csv": "csv"}

# --------------------------------------------------------------------------------------------------------------
# Tokenising
# --------------------------------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"`+([^`]+)`+")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A word: letters/digits plus the joiners that keep identifiers and tech names whole (c++, c#, node.js, utils.py).
_WORD = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\+\+|#)|(?:[.:/-][A-Za-z_$0-9][\w$]*)+)?|\d+(?:\.\d+)*|->|→")
_SNAKE = re.compile(r"^_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*$")
_CAMEL = re.compile(r"^[a-z]+[A-Z][A-Za-z0-9]*$|^[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*$")
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(?:[.:/][A-Za-z_][\w]*)+$")
_CALL = re.compile(r"([A-Za-z_][\w.]*)\(\)")
_URL = re.compile(r"https?://\S+")


def normalize_query(text: str) -> str:
    """The key of the exact-match stage: case, spacing and trailing punctuation do not change a question."""
    t = text.strip().lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    t = re.sub(r"\s+", " ", t)
    t = re.sub(r"[\s?.!,;:]+$", "", t)
    t = re.sub(r"^(?:hey|hi|hello|please|pls)[,!\s]+", "", t)
    return t


def words(text: str) -> list[str]:
    """Tokens in order, original case (identifiers are case-sensitive), code spans unwrapped."""
    text = _URL.sub(" ", text)
    text = text.replace("`", " ")
    text = re.sub(r"n't\b", " not", re.sub(r"(?i)\bcan't\b|\bcannot\b", "can not", text))
    out = []
    for m in _WORD.finditer(text):
        w = m.group(0)
        out.append(w.rstrip(".:/-") or w)
    return out


def _lower_words(text: str) -> list[str]:
    return [w.lower() for w in words(text)]


@lru_cache(maxsize=None)
def _forms(base: str) -> frozenset[str]:
    """Inflected forms of a pole word (add → adds, added, adding; write → writes, writing, wrote, written)."""
    irregular = {
        "write": {"wrote", "written", "writer", "writers"}, "read": {"reader", "readers", "readonly"},
        "begin": {"began", "begun", "beginning"}, "get": {"got", "gotten", "getter", "getters", "getting"},
        "set": {"setter", "setters", "setting"}, "lose": {"lost", "losing", "loses", "loser"},
        "win": {"won", "winning", "winner"}, "buy": {"bought", "buyer"}, "sell": {"sold", "seller"},
        "split": {"splitting"}, "send": {"sent", "sending"}, "hide": {"hid", "hidden", "hiding"},
        "show": {"shown", "showing"}, "min": {"minimum", "minimal", "minimize", "minimise", "smallest"},
        "max": {"maximum", "maximal", "maximize", "maximise"}, "stop": {"stopped", "stopping"},
        "shallow": {"shallowcopy", "shallow-copy"}, "deep": {"deepcopy", "deep-copy", "deeply"},
        "ascending": {"asc", "ascend", "increasing"}, "descending": {"desc", "descend", "decreasing"},
        "zip": {"zipped", "zipping"}, "unzip": {"unzipped", "unzipping"}, "push": {"pushed", "pushing"},
        "pull": {"pulled", "pulling"}, "upper": {"uppercase", "upper-case", "capitalize", "capitalise"},
        "lower": {"lowercase", "lower-case"}, "first": {"firstly", "earliest"}, "last": {"lastly", "latest"},
        "men": {"man's", "men's"}, "women": {"woman's", "women's"}, "husband": {"husbands"}, "wife": {"wives"},
        "child": {"children", "childs"}, "parent": {"parents"}, "fail": {"failed", "failing", "fails", "failure"},
        "pass": {"passed", "passing", "passes"}, "in": set(), "out": set(),
        "up": set(), "down": set(), "old": set(), "new": set(), "good": set(), "bad": set(), "all": set(),
        "more": set(), "less": set(), "most": set(), "least": set(), "true": set(), "false": set(),
    }
    if base in irregular:
        extra = irregular[base]
        if base in {"in", "out", "up", "down", "old", "new", "good", "bad", "all", "more", "less", "most", "least",
                    "true", "false"}:
            return frozenset({base} | extra)
    else:
        extra = set()
    forms = {base, base + "s", base + "es", base + "ed", base + "d", base + "ing", base + "er", base + "ers"}
    if base.endswith("e"):
        forms |= {base[:-1] + "ing", base[:-1] + "ion", base[:-1] + "ation"}
    if base.endswith("y"):
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    if len(base) >= 3 and base[-1] not in "aeiouwxy" and base[-2] in "aeiou" and base[-3] not in "aeiou":
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing", base + base[-1] + "er"}
    if base.endswith("t"):
        forms |= {base + "ion", base + "ions"}
    return frozenset(forms | extra)


# Words whose pole use is too common to carry meaning outside a pair swap (only the swap itself is refused).
_WEAK_POLES = {"in", "out", "up", "down", "more", "less", "most", "least", "all", "none", "good", "bad", "old", "new",
               "set", "get", "key", "value", "start", "end", "like", "long", "short", "light", "high", "low",
               "big", "small", "large", "pass", "day", "man", "first", "last", "top", "open", "close"}


# --------------------------------------------------------------------------------------------------------------
# Feature extraction (each returns a set; the guard compares the two sides)
# --------------------------------------------------------------------------------------------------------------


def technologies(text: str) -> set[str]:
    """Canonical names of the languages, frameworks, libraries and tools a query names."""
    toks = words(text)
    low = [t.lower() for t in toks]
    found: set[str] = set()
    for i, (tok, lw) in enumerate(zip(toks, low)):
        key = lw.rstrip("'s") if lw.endswith("'s") else lw
        if key in AMBIGUOUS_TECH:
            before = low[i - 1] if i > 0 else ""
            after = low[i + 1] if i + 1 < len(low) else ""
            in_context = before in _TECH_CONTEXT_BEFORE or after in _TECH_CONTEXT_AFTER
            if len(key) == 1:
                # "C", "R", "D" only in a clear context ("in C", "C code").
                if tok.isupper() and in_context:
                    found.add(AMBIGUOUS_TECH[key])
            elif in_context or (tok[:1].isupper() and (i > 0 or re.match(rf"\s*{re.escape(tok)}\s*:", text))):
                # "go" / "make" / "node" as words are common; they name a technology in a code context or when
                # capitalised mid-sentence ("sort a slice in go", "Go generics").
                found.add(AMBIGUOUS_TECH[key])
            continue
        if key in TECH_ALIASES:
            found.add(TECH_ALIASES[key])
            continue
        # node.js / next.js / scikit-learn survive as one token; "numpy.array" names numpy.
        head = re.split(r"[./:]", key)[0]
        if head != key and head in TECH_ALIASES and head not in AMBIGUOUS_TECH:
            found.add(TECH_ALIASES[head])
    return found | {TECH_IMPLIES[t] for t in found if t in TECH_IMPLIES}


def code_identifiers(text: str) -> set[str]:
    """Identifiers: everything inside `code` spans, plus snake_case, camelCase, dotted names, calls and file names."""
    idents: set[str] = set()
    for span in _CODE_SPAN.findall(text):
        for tok in words(_FLAG.sub(" ", span)):  # flags have their own rule
            if not _FLAG.fullmatch(tok) and not _NUMBER.fullmatch(tok) and tok.lower() not in STOPWORDS:
                idents.add(tok)
    for name in _CALL.findall(text):
        idents.add(name)
    for tok in words(_CODE_SPAN.sub(" ", text)):
        if _SNAKE.match(tok) or _CAMEL.match(tok) or (_DOTTED.match(tok) and tok.lower() not in TECH_ALIASES):
            idents.add(tok)
    return idents


def flags(text: str) -> set[str]:
    """Command-line flags (``--max-heads``, ``-i``)."""
    return {m.lower() for m in _FLAG.findall(_URL.sub(" ", text)) if not re.fullmatch(r"-\d.*", m)}


def numbers(text: str) -> set[str]:
    """Numbers and versions, with trailing ``.0`` dropped (numpy 2 == numpy 2.0) and number words folded."""
    out: set[str] = set()
    for m in _NUMBER.findall(_URL.sub(" ", text)):
        m = m.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", m) else m
        while re.search(r"\.0+$", m) and m.count(".") >= 1:
            m = re.sub(r"\.0+$", "", m)
        out.add(m.lstrip("0") or "0")
    for w in _lower_words(text):
        if w in _WORD_NUMBERS:
            out.add(_WORD_NUMBERS[w])
    return out


def negated(text: str) -> bool:
    """True when the query asks about something not happening / without something."""
    return any(w in _NEGATIONS for w in _lower_words(text))


def poles(text: str) -> set[tuple[int, int]]:
    """Which antonym poles a query uses: (pair index, 0 or 1)."""
    low = set(_lower_words(text))
    # Hyphenated / compound tokens also count by their parts ("read-only", "max-heads" is a flag, not a pole).
    for w in list(low):
        if "-" in w and not w.startswith("-"):
            low.update(w.split("-"))
    out: set[tuple[int, int]] = set()
    for i, (x, y) in enumerate(ANTONYM_POLES):
        if low & _forms(x):
            out.add((i, 0))
        if low & _forms(y):
            out.add((i, 1))
    return out


def _edge_word(w: str) -> str:
    w = _EDGE_SYNONYMS.get(w, w)
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return _EDGE_SYNONYMS.get(w, w)


_EDGE_VERBS = {"convert", "converting", "conversion", "cast", "casting", "change", "turn", "transform", "parse",
               "go", "move", "migrate", "migrating", "switch", "translate", "copy", "copying", "map", "mapping"}


def direction_sides(text: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """The (source, destination) content words of a conversion or move, or None.

    "convert a list of tuples to a dict" → ({list, tuple}, {dict}); "copy files from the container to the host" →
    ({container}, {host}); "int from string" → ({string}, {int}).
    """
    low = [w.lower() for w in words(text)]
    marks = [(i, w) for i, w in enumerate(low) if w in _FORWARD_MARKERS or w in _BACKWARD_MARKERS]

    def content(lo: int, hi: int) -> frozenset[str]:
        return frozenset(_edge_word(w) for w in low[lo:hi]
                         if w not in STOPWORDS and w not in _EDGE_VERBS and w not in _FORWARD_MARKERS
                         and w not in _BACKWARD_MARKERS)

    for n, (i, w) in enumerate(marks):
        if w in _BACKWARD_MARKERS:
            nxt = next((j for j, x in marks[n + 1 :] if x in _FORWARD_MARKERS), None)
            if nxt is not None:  # from X to Y
                src, dst = content(i + 1, nxt), content(nxt + 1, len(low))
            else:  # Y from X
                src, dst = content(i + 1, len(low)), content(0, i)
        else:
            src, dst = content(0, i), content(i + 1, len(low))
        if src and dst:
            return src, dst
    return None


def reversed_direction(a: str, b: str) -> str:
    """A word that moves from source to destination between ``a`` and ``b`` ("int to string" vs "string to int")."""
    sa, sb = direction_sides(a), direction_sides(b)
    if sa is None or sb is None:
        return ""
    (la, ra), (lb, rb) = sa, sb
    crossed_1 = (la & rb) - lb
    crossed_2 = (ra & lb) - rb
    if crossed_1 and crossed_2:
        return f"{sorted(crossed_1)[0]} to {sorted(crossed_2)[0]}"
    return ""


def entities(text: str) -> set[str]:
    """Capitalised words that are not at the start of a sentence and not tech names (people, places, products)."""
    toks = words(text)
    out: set[str] = set()
    for i, tok in enumerate(toks):
        if i == 0 or not tok[:1].isupper() or tok.isupper() and len(tok) <= 1:
            continue
        low = tok.lower()
        if low in STOPWORDS or low in TECH_ALIASES or low in AMBIGUOUS_TECH or low == "i":
            continue
        prev_raw = text[: text.find(tok)].rstrip()
        if prev_raw.endswith((".", "?", "!", ":")):
            continue
        out.add(low)
    return out


# --------------------------------------------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's answer. ``rule`` and ``token`` say why a pair was refused (both empty when allowed)."""

    allowed: bool
    rule: str = ""
    token: str = ""

    def __bool__(self) -> bool:
        return self.allowed


_ALLOW = GuardVerdict(True)


def _first(diff: set[str]) -> str:
    return sorted(diff, key=lambda s: (len(s), s))[0]


def _set_rule(rule: str, a: set[str], b: set[str]) -> GuardVerdict | None:
    """Refuse when the sets differ, naming first what the cached question had and the new one lacks."""
    if a != b:
        return GuardVerdict(False, rule, _first(a - b) if a - b else _first(b - a))
    return None


def _unmatched_identifier(one: str, other: str) -> str:
    """An identifier of ``one`` that ``other`` does not mention (case-insensitively, as a whole word), or ''.

    Case is ignored so that "iPhone" matches "iphone" and a `code span` matches the same name written bare; two
    different names ("get_user" vs "get_users", "parseArgs" vs "parseOptions") still differ.
    """
    other_words = {w.lower() for w in words(other)}
    other_words |= {p for w in other_words for p in re.split(r"[./:]", w)}
    for ident in sorted(code_identifiers(one)):
        low = ident.lower()
        if low in other_words:
            continue
        parts = [p for p in re.split(r"[\s./:]+", low) if p]
        if len(parts) > 1 and all(p in other_words for p in parts):
            continue
        return ident
    return ""


def check_pair(cached: str, incoming: str, *, entity_rule: bool = True) -> GuardVerdict:
    """Decide whether the answer to ``cached`` may be served for ``incoming``.

    Rules are checked from the most specific to the most general; the first that fires names the token that differs.
    """
    if normalize_query(cached) == normalize_query(incoming):
        return _ALLOW
    verdict = _set_rule("language", technologies(cached), technologies(incoming))
    if verdict is not None:
        return verdict
    token = _unmatched_identifier(cached, incoming) or _unmatched_identifier(incoming, cached)
    if token:
        return GuardVerdict(False, "identifier", token)
    for rule, fn in (("flag", flags), ("number", numbers)):
        verdict = _set_rule(rule, fn(cached), fn(incoming))
        if verdict is not None:
            return verdict
    if negated(cached) != negated(incoming):
        side = cached if negated(cached) else incoming
        cue = next(w for w in _lower_words(side) if w in _NEGATIONS)
        return GuardVerdict(False, "negation", cue)
    pa, pb = poles(cached), poles(incoming)
    for i, pole in sorted(pa ^ pb):
        other = (i, 1 - pole)
        # A swap: one side uses this pole, the other side uses the opposite pole (and not this one).
        if ((i, pole) in pa and other in pb and other not in pa) or ((i, pole) in pb and other in pa and other not in pb):
            x, y = ANTONYM_POLES[i]
            return GuardVerdict(False, "antonym", f"{x}/{y}")
        # One side names a strong pole the other never mentions ("enable the cache" vs "the cache setting").
        word = ANTONYM_POLES[i][pole]
        if word not in _WEAK_POLES and ANTONYM_POLES[i][1 - pole] not in _WEAK_POLES and (
            {p for p in pa if p[0] == i} and {p for p in pb if p[0] == i}
        ):
            return GuardVerdict(False, "antonym", word)
    swapped = reversed_direction(cached, incoming)
    if swapped:
        return GuardVerdict(False, "order", swapped)
    if entity_rule:
        na, nb = entities(cached), entities(incoming)
        # Only when both sides name something the other lacks: "Trump" vs "Donald Trump" is fine,
        # "capital of France" vs "capital of Germany" is not.
        if (na - nb) and (nb - na):
            return GuardVerdict(False, "entity", _first((na - nb) | (nb - na)))
    return _ALLOW
