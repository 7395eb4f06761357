"""docs/TROUBLESHOOTING.md lists every message the pack's nodes can show a user (no host needed).

The messages are found in nodes/*.py with `ast`, without importing anything:
  * the message of every `raise SomeError(message)`;
  * every string a node's `validate_inputs` returns (the host shows it as a validation failure);
  * the format string of every logging.warning / error / exception / critical call (the console).
A message that is built elsewhere is followed to its text: a name to its assignments in the
function (or to the tuple a `for` loop takes it from), to a module constant (also `module.NAME`
and imported names), or, for a function's parameter, to the arguments of every call; a call to a
function of nodes/ to the strings it returns, and where it returns something built from its
parameters (`first_error(*messages)`), to the messages among the call's arguments, so
`raise ValueError(choice_error(...))` and `return first_error(choice_error(...), ...)` find
choice_error's f-string. `str(e)` of a caught exception adds nothing: its text is found where it
is raised. A raise whose text cannot be found this way fails the test.

A message is a template: literal text and placeholders (an f-string's {...} unless it names a
module's string constant, which is filled in; %s; whatever is joined in with +).
Its STABLE OPENING is the template up to and including its sixth literal word (a word: a
whitespace-separated piece holding a letter or a digit), or the whole template when it has fewer;
it needs at least three literal words. The doc lists the message when one of its inline code
spans (`...`) holds the opening, each placeholder written as <anything> (quotes around it
optional): `<name> must be in [0, 1], got <value>` lists `{name} must be in [0, 1], got {value!r}`.
Different openings must not match one another, so that one entry cannot stand for two messages;
and each message heading (### `...`) above the doc's section on the host's own messages must
still match a message, so that the list cannot drift either way.
"""
import ast
import re
from pathlib import Path

PACK = Path(__file__).resolve().parents[1]
NODES = PACK / "nodes"
DOC = PACK / "docs" / "TROUBLESHOOTING.md"
HOST_SECTION = "## Messages from ComfyUI itself"   # headings below this one quote the host, not the pack

OPENING_WORDS = 6
MIN_WORDS = 3
HOLE = None                                        # a placeholder in a template
LOG_METHODS = {"warning", "warn", "error", "exception", "critical"}
LOGGERS = {"logging", "logger", "log", "LOGGER"}
VALIDATORS = {"validate_inputs", "VALIDATE_INPUTS"}
SILENT_RAISES = {"InterruptProcessingException", "StopIteration"}   # raised without a message on purpose
PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[sdrifgeExXoc%]")
WORD = re.compile(r"\S+")
HOLE_IN_DOC = r"'?<[^<>`]+>'?"


class Message:
    def __init__(self, where, kind, template):
        self.where, self.kind, self.template = where, kind, template

    def __repr__(self):
        return f"{self.where} ({self.kind}): {show(self.template)!r}"


def merge(parts):
    """Adjacent literals joined, adjacent placeholders made one."""
    out = []
    for p in parts:
        if p is HOLE:
            if not out or out[-1] is not HOLE:
                out.append(HOLE)
        elif p:
            if out and out[-1] is not HOLE:
                out[-1] += p
            else:
                out.append(p)
    return tuple(out)


def split_percent(text):
    parts, last = [], 0
    for m in PERCENT.finditer(text):
        parts += [text[last:m.start()], "%" if m.group(0) == "%%" else HOLE]
        last = m.end()
    return parts + [text[last:]]


def show(template):
    return "".join("<...>" if p is HOLE else p for p in template)


def literal_words(template):
    return sum(1 for p in template if p is not HOLE for w in WORD.findall(p) if re.search(r"\w", w))


def opening(template):
    """The template up to and including its OPENING_WORDS-th literal word."""
    out, words = [], 0
    for p in template:
        if p is HOLE:
            out.append(HOLE)
            continue
        for m in WORD.finditer(p):
            if re.search(r"\w", m.group(0)):
                words += 1
                if words == OPENING_WORDS:
                    out.append(p[:m.end()])
                    return merge(out)
        out.append(p)
    out = list(merge(out))
    if out and out[-1] is not HOLE:
        out[-1] = out[-1].rstrip()
    return tuple(out)


def opening_pattern(op):
    """A regex that finds the opening in a doc code span, placeholders written <...>."""
    def literal(p):
        return re.escape(re.sub(r"\s+", " ", p)).replace(r"\ ", r"\s+")
    return re.compile("".join(HOLE_IN_DOC if p is HOLE else literal(p) for p in op))


def as_doc(op):
    """How the doc may write an opening (placeholders as <x>): used to test openings against each other."""
    return "".join("<x>" if p is HOLE else p for p in op)


class Scanner:
    """Finds the messages in a set of modules given as {module name: source}."""

    def __init__(self, sources):
        self.trees = {name: ast.parse(src) for name, src in sources.items()}
        self.parent = {}
        self.functions, self.constants, self.imports = {}, {}, {}
        for mod, tree in self.trees.items():
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    self.parent[child] = node
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.functions[(mod, node.name)] = node
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    self.constants[(mod, node.targets[0].id)] = node.value
                elif isinstance(node, ast.ImportFrom) and node.level >= 1:
                    for a in node.names:
                        target = (node.module, a.name) if node.module else (a.name, None)
                        self.imports[(mod, a.asname or a.name)] = target
        self.modules = {id(tree): mod for mod, tree in self.trees.items()}
        self.problems = []

    # -- where a node is -------------------------------------------------------------
    def module_of(self, node):
        while node in self.parent:
            node = self.parent[node]
        return self.modules[id(node)]

    def function_of(self, node):
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return node
        return None

    def where(self, node):
        return f"{self.module_of(node)}.py:{node.lineno}"

    # -- names -------------------------------------------------------------------------
    def lookup(self, mod, name, kind):
        """(module, node) of a module-level function or constant, following relative imports."""
        table = self.functions if kind == "function" else self.constants
        for _ in range(5):
            if (mod, name) in table:
                return mod, table[(mod, name)]
            target = self.imports.get((mod, name))
            if target is None or target[1] is None:
                return None
            mod, name = target
        return None

    def module_alias(self, mod, name):
        target = self.imports.get((mod, name))
        return target[0] if target and target[1] is None and target[0] in self.trees else None

    def callee(self, call, mod):
        f = call.func
        if isinstance(f, ast.Name):
            return self.lookup(mod, f.id, "function")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            other = self.module_alias(mod, f.value.id)
            if other:
                return self.lookup(other, f.attr, "function")
        return None

    @staticmethod
    def params(fn):
        a = fn.args
        return [p.arg for p in a.posonlyargs + a.args], (a.vararg.arg if a.vararg else None), \
            [p.arg for p in a.kwonlyargs]

    def bind(self, fn, call, ctx):
        """{parameter: [(argument expression, caller's context)]} for one call."""
        positional, star, kwonly = self.params(fn)
        binds, i = {}, 0
        for arg in call.args:
            values = [arg]
            if isinstance(arg, ast.Starred):
                v = arg.value
                values = [v.elt] if isinstance(v, (ast.GeneratorExp, ast.ListComp)) else \
                    list(v.elts) if isinstance(v, (ast.Tuple, ast.List)) else [v]
            for v in values:
                name = positional[i] if i < len(positional) else star
                i += 1
                if name:
                    binds.setdefault(name, []).append((v, ctx))
        for kw in call.keywords:
            if kw.arg:
                binds.setdefault(kw.arg, []).append((kw.value, ctx))
        return binds

    def call_sites(self, fn, mod):
        for other, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and self.callee(node, other) == (mod, fn):
                    yield node, (other, self.function_of(node), {})

    # -- resolving an expression to templates ---------------------------------------------
    def resolve(self, e, ctx, seen=frozenset()):
        """A list of templates, [] when the expression holds no message of its own, None when
        its text cannot be found."""
        mod, fn, binds = ctx
        if isinstance(e, ast.Constant):
            return [(e.value,)] if isinstance(e.value, str) else []
        if isinstance(e, ast.JoinedStr):
            return [merge(v.value if isinstance(v, ast.Constant) else self.fill(v, ctx) for v in e.values)]
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add):
            left, right = self.part(e.left, ctx, seen), self.part(e.right, ctx, seen)
            return [merge(a + b) for a in left for b in right]
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Mod):
            found = self.resolve(e.left, ctx, seen)
            return None if found is None else [merge(x for p in t for x in ([p] if p is HOLE else split_percent(p)))
                                               for t in found]
        if isinstance(e, ast.IfExp):
            a, b = self.resolve(e.body, ctx, seen), self.resolve(e.orelse, ctx, seen)
            return None if a is None or b is None else a + b
        if isinstance(e, ast.Name):
            return self.resolve_name(e.id, ctx, seen)
        if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name):
            other = self.module_alias(mod, e.value.id)
            hit = other and self.lookup(other, e.attr, "constant")
            return self.resolve(hit[1], (hit[0], None, {}), seen) if hit else None
        if isinstance(e, ast.Call):
            return self.resolve_call(e, ctx, seen)
        return None

    def part(self, e, ctx, seen):
        found = self.resolve(e, ctx, seen)
        return found if found else [(HOLE,)]

    def fill(self, value, ctx):
        """An f-string's {NAME} of a module's string constant is its text; anything else a placeholder."""
        mod, fn, _ = ctx
        if isinstance(value.value, ast.Name) and value.conversion == -1 and value.format_spec is None:
            name = value.value.id
            if fn is not None and any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store)
                                      or isinstance(n, ast.arg) and n.arg == name for n in ast.walk(fn)):
                return HOLE   # a local name, not the module's constant
            hit = self.lookup(mod, name, "constant")
            if hit and isinstance(hit[1], ast.Constant) and isinstance(hit[1].value, str):
                return hit[1].value
        return HOLE

    def caught(self, name, fn):
        return fn is not None and any(isinstance(n, ast.ExceptHandler) and n.name == name for n in ast.walk(fn))

    def resolve_name(self, name, ctx, seen):
        mod, fn, binds = ctx
        if fn is not None:
            if self.caught(name, fn):
                return []
            positional, star, kwonly = self.params(fn)
            if name in positional + kwonly + [star]:
                if name in binds:
                    sources = binds[name]
                elif (mod, fn.name, name) in seen:
                    return []
                else:
                    sources = list(self.call_sites(fn, mod))
                    sources = [(self.bind(fn, call, c).get(name), c) for call, c in sources]
                    sources = [(e, c) for found, c in sources if found for e, _ in found]
                    seen = seen | {(mod, fn.name, name)}
                if not sources:
                    return None
                out = []
                for e, c in sources:
                    found = self.resolve(e, c, seen)
                    if found is None:
                        return None
                    out += found
                return out
            values = []
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    values.append(node.value)
                elif isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) \
                        and node.target.id == name:
                    it = node.iter
                    values += list(it.elts) if isinstance(it, (ast.Tuple, ast.List)) else [it]
            if values:
                out = []
                for v in values:
                    found = self.resolve(v, ctx, seen)
                    if found is None:
                        return None
                    out += found
                return out
        hit = self.lookup(mod, name, "constant")
        return self.resolve(hit[1], (hit[0], None, {}), seen) if hit else None

    def resolve_call(self, call, ctx, seen):
        mod, fn, binds = ctx
        if isinstance(call.func, ast.Name) and call.func.id in ("str", "repr") and len(call.args) == 1:
            return self.resolve(call.args[0], ctx, seen)
        hit = self.callee(call, mod)
        if hit is None:
            return None
        cmod, cfn = hit
        if (cmod, cfn.name) in seen:
            return []
        seen = seen | {(cmod, cfn.name)}
        inner = (cmod, cfn, self.bind(cfn, call, ctx))
        out = []
        for node in ast.walk(cfn):
            if not isinstance(node, ast.Return) or node.value is None or self.function_of(node) is not cfn:
                continue
            found = self.resolve(node.value, inner, seen)
            if found is None:   # built from its parameters (first_error's next(...)): the messages handed in
                positional, star, kwonly = self.params(cfn)
                used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)} & \
                    set(positional + kwonly + [star])
                if not used:
                    return None
                for name in sorted(used):
                    for e, c in inner[2].get(name, ()):
                        got = self.resolve(e, c, seen)
                        if got is None:
                            return None
                        out += got
            else:
                out += found
        return out

    # -- the messages --------------------------------------------------------------------
    def messages(self):
        found = []

        def add(node, kind, expr, ctx):
            templates = self.resolve(expr, ctx)
            if templates is None:
                self.problems.append(f"{self.where(node)}: cannot find the text of this {kind}'s message: "
                                     f"{ast.unparse(node)[:120]}")
                return
            found.extend(Message(self.where(node), kind, t) for t in templates)

        for mod, tree in self.trees.items():
            for node in ast.walk(tree):
                fn = self.function_of(node)
                ctx = (mod, fn, {})
                if isinstance(node, ast.Raise) and node.exc is not None:
                    exc = node.exc
                    if isinstance(exc, ast.Call) and exc.args:
                        add(node, "raise", exc.args[0], ctx)
                    elif isinstance(exc, ast.Name) and self.caught(exc.id, fn):
                        continue   # a caught exception raised again
                    else:
                        name = ast.unparse(exc.func if isinstance(exc, ast.Call) else exc).split(".")[-1]
                        if name not in SILENT_RAISES:
                            self.problems.append(f"{self.where(node)}: raises {name} without a message")
                elif isinstance(node, ast.Return) and node.value is not None and fn is not None \
                        and fn.name in VALIDATORS:
                    add(node, "validate_inputs", node.value, ctx)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in LOG_METHODS and isinstance(node.func.value, ast.Name) \
                        and node.func.value.id in LOGGERS and node.args:
                    add(node, "log", ast.BinOp(node.args[0], ast.Mod(), ast.Constant(None)), ctx)
        bare = [m for m in found if literal_words(opening(m.template)) < MIN_WORDS]
        self.problems += [f"{m.where}: too little fixed text to list ({show(m.template)!r}): put at least "
                          f"{MIN_WORDS} words before or between the placeholders" for m in bare]
        return [m for m in found if m not in bare]


def scan(sources):
    """(messages, problems) of {module name: source}."""
    s = Scanner(sources)
    return s.messages(), s.problems


def node_sources():
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(NODES.glob("*.py"))}


def by_opening(messages):
    """{opening: [messages]}: messages with the same opening are one entry."""
    out = {}
    for m in messages:
        out.setdefault(opening(m.template), []).append(m)
    return out


def clashes(openings):
    """Pairs of different openings where one would match the doc's entry of the other."""
    return [(a, b) for a in openings for b in openings if a != b and opening_pattern(a).search(as_doc(b))]


def code_spans(text):
    return [" ".join(s.split()) for s in re.findall(r"`([^`\n]+)`", text)]


def unlisted(openings, doc_text):
    spans = code_spans(doc_text)
    return [op for op in openings if not any(opening_pattern(op).search(s) for s in spans)]


def stale_headings(openings, doc_text):
    """Message headings (### `...`, above the host's section) that no longer match a message."""
    pack_part = doc_text.split(HOST_SECTION)[0]
    heads = [s for line in pack_part.splitlines() if line.startswith("### ") for s in code_spans(line)]
    return [h for h in heads if not any(opening_pattern(op).search(h) for op in openings)]


# ---------------------------------------------------------------------------------------------
# the pack
# ---------------------------------------------------------------------------------------------

def pack_messages():
    messages, problems = scan(node_sources())
    assert not problems, "\n".join(problems)
    return messages


def test_every_message_the_nodes_can_show_is_found():
    groups = by_opening(pack_messages())
    shown = {show(op) for op in groups}
    # a few known ones, one per way a message is built
    assert "<...> must be one of <...>; got <...>" in shown                      # choice_error, via raise and validate_inputs
    assert "the NudeNet detector needs the optional" in shown                    # INSTALL_HINT (module.NAME)
    assert "[safety presets] skipped a malformed preset:" in shown               # a logging.warning
    assert "classes is empty: give NudeNet class" in shown                       # "..." + ", ".join(...)
    assert "safe_positive is required when safety_weight > 0" in shown           # a plain string
    assert "<...>:1: missing key <...>" in shown                                  # an f-string starting with a placeholder
    kinds = {m.kind for ms in groups.values() for m in ms}
    assert kinds == {"raise", "validate_inputs", "log"}
    assert len(groups) >= 60, len(groups)
    assert not clashes(list(groups)), clashes(list(groups))


def test_troubleshooting_lists_every_message():
    groups = by_opening(pack_messages())
    missing = unlisted(groups, DOC.read_text(encoding="utf-8"))
    assert not missing, "docs/TROUBLESHOOTING.md does not list these messages (add an entry whose code span " \
        "holds the text, placeholders as <name>):\n" + "\n".join(
            f"  `{show(op).replace('<...>', '<x>')}`   from {groups[op][0].where}" for op in missing)


def test_a_new_raise_in_the_pack_fails_until_the_doc_lists_it():
    """The real sources and the real doc, with one raise added to nodes/region.py in memory."""
    sources = node_sources()
    sources["region"] += (
        "\n\ndef check_feather(feather):\n"
        "    if feather < 0:\n"
        "        raise ValueError(f\"region feather must not be negative, got {feather}\")\n")
    messages, problems = scan(sources)
    assert not problems
    doc = DOC.read_text(encoding="utf-8")
    assert [show(op) for op in unlisted(by_opening(messages), doc)] == ["region feather must not be negative,"]
    doc += "\n### `region feather must not be negative, got <value>`\n"
    assert not unlisted(by_opening(messages), doc)


def test_troubleshooting_lists_no_message_that_is_gone():
    groups = by_opening(pack_messages())
    stale = stale_headings(groups, DOC.read_text(encoding="utf-8"))
    assert not stale, "docs/TROUBLESHOOTING.md has entries for messages nodes/ no longer shows: " + repr(stale)


# ---------------------------------------------------------------------------------------------
# the rule itself, on synthetic sources
# ---------------------------------------------------------------------------------------------

HELPERS = '''
def choice_error(name, value, options):
    if value is None or value in options:
        return None
    return f"{name} must be one of {', '.join(options)}; got {value!r}"

def first_error(*messages):
    return next((m for m in messages if m), True)
'''

NODE = '''
import logging
from .helpers import choice_error, first_error
from . import hints

MODES = ("a", "b")

def check(mode):
    err = choice_error("mode", mode, MODES)
    if err:
        raise ValueError(err)

def run(x, path):
    if x < 0:
        raise ValueError(f"x must not be negative, got {x}")
    for err in (choice_error("kind", x, MODES),):
        if err:
            raise TypeError(err)
    if not path:
        raise RuntimeError(hints.INSTALL)
    logging.warning("[pack] skipped the file %s", path)

class Node:
    @classmethod
    def validate_inputs(cls, mode=None):
        try:
            check(mode)
        except ValueError as e:
            return str(e)
        return first_error(choice_error("mode", mode, MODES))
'''

HINTS = '''
PACKAGE = "thing"
INSTALL = f"the optional package '{PACKAGE}' is not installed: pip install {PACKAGE}"
'''

DOC_OK = """
### `<name> must be one of <choices>; got <value>`
### `x must not be negative, got <x>`
### `the optional package 'thing' is not installed: pip install thing`
### `[pack] skipped the file <path>`
"""


def synthetic(extra=""):
    return {"helpers": HELPERS, "node": NODE + extra, "hints": HINTS}


def test_rule_finds_literals_helpers_constants_and_logging():
    messages, problems = scan(synthetic())
    assert not problems
    groups = by_opening(messages)
    assert {show(op) for op in groups} == {
        "<...> must be one of <...>; got <...>",
        "x must not be negative, got",
        "the optional package 'thing' is not",
        "[pack] skipped the file <...>"}
    # choice_error's message is reached through a raise of a variable, a loop's tuple and validate_inputs
    kinds = {m.kind for m in groups[opening((HOLE, " must be one of ", HOLE, "; got ", HOLE))]}
    assert kinds == {"raise", "validate_inputs"}
    assert not unlisted(groups, DOC_OK) and not stale_headings(groups, DOC_OK)


def test_a_new_raise_with_a_new_message_fails_the_doc_check():
    extra = '''
def more(y):
    if y:
        raise ValueError(f"the widget {y!r} is too wide for the latent")
'''
    messages, problems = scan(synthetic(extra))
    assert not problems
    missing = unlisted(by_opening(messages), DOC_OK)
    assert [show(op) for op in missing] == ["the widget <...> is too wide for"]
    assert not unlisted(by_opening(messages), DOC_OK + "### `the widget '<name>' is too wide for the latent`\n")


def test_a_message_handed_in_through_a_parameter_is_found_at_its_calls():
    extra = '''
def fail(msg):
    raise ValueError(msg)

def use():
    fail("the grid is empty: draw a region first")
'''
    messages, problems = scan(synthetic(extra))
    assert not problems
    assert "the grid is empty: draw a region first" in {show(m.template) for m in messages}


def test_messages_whose_text_cannot_be_found_or_named_are_problems():
    extra = '''
def odd(table, key):
    raise ValueError(table[key])

def worse():
    raise KeyError

def vague(n):
    raise ValueError(f"{n} bad")
'''
    _, problems = scan(synthetic(extra))
    assert len(problems) == 3, problems
    assert "cannot find the text" in problems[0] and "node.py:" in problems[0]
    assert any("raises KeyError without a message" in p for p in problems)
    assert any("too little fixed text" in p for p in problems)


def test_stale_entries_and_clashing_openings_are_caught():
    messages, _ = scan(synthetic())
    groups = by_opening(messages)
    assert stale_headings(groups, DOC_OK + "### `the old message that is gone now`\n") == [
        "the old message that is gone now"]
    a, b = opening(("value must be one of ", HOLE)), opening(("value must be one of ", HOLE, ", got ", HOLE))
    assert clashes([a, b])          # a's entry would be matched by b's: one entry could stand for both


def test_opening_is_the_first_six_words_with_placeholders():
    t = (HOLE, " holds ", HOLE, " NaN or infinite values; refusing to propagate them")
    assert show(opening(t)) == "<...> holds <...> NaN or infinite values; refusing"
    assert show(opening(("short one",))) == "short one"
    assert opening_pattern(opening(t)).search("<name> holds <count> NaN or infinite values; refusing to")
    assert opening_pattern(opening((HOLE, ":1: missing key ", HOLE))).search("<file>:1: missing key '<key>'")
