"""Word ladder: turn the start word into the target word, one letter change per step.

Two dictionaries (tasks/data/WORDLISTS_LICENSE.md says where they come from):
- generation: tasks/data/words_common.txt (4,410 common English words of 3-5 letters, plurals
  and inflections included). The start, the target and the optimal ladder are drawn from it.
- verification: that list plus tasks/data/words_english_3to5.txt (SCOWL size 70: any real
  English word of 3-5 letters, plurals and inflections included). So any ladder of common
  words is accepted, and so is one through a rarer real word (has, vet, oat, goes, cars).
A ladder may be at most SLACK (2) steps longer than the shortest one through common words;
the question states both numbers.

Official records (category WordLadder) carry `{"solution", "start_word", "target_word"}`:
the official generator leaks its ladder there. We read start and target from it, and score
them against web2 (the list behind NLTK `words`, the official dictionary) plus our common
list, allowing the official ladder's own length or the optimum + SLACK, whichever is larger.

    from tasks import get
    t = get("word_ladder"); inst = t.generate(level=2, seed=0)
    t.verify(t.answer(inst), inst.state)      # True
"""
from __future__ import annotations

import re
from functools import lru_cache

from . import draw, formats
from ._paths import load_words
from .base import Task, parse_literal, step

# level: (word length, min optimal steps, max optimal steps) - the official ranges
LEVELS = {1: (3, 3, 5), 2: (4, 4, 6), 3: (4, 5, 7), 4: (5, 6, 8), 5: (5, 7, 10)}
SLACK = 2
COMMON, OFFICIAL = "common", "official"
_FILES = {COMMON: ("words_common.txt",), OFFICIAL: ("words_common.txt", "words_web2_3to5.txt")}
# what the verifier accepts for a state of each dictionary: any real English word as well
_VERIFY_FILES = {COMMON: _FILES[COMMON] + ("words_english_3to5.txt",),
                 OFFICIAL: _FILES[OFFICIAL] + ("words_english_3to5.txt",)}
MAX_ANSWER_WORDS = 60

_WORD_RE = re.compile(r"[A-Za-z]{1,30}")
_LADDER_SEPARATORS = re.compile(r"[\s,;>\-→—\[\]()'\"`]*")


@lru_cache(maxsize=None)
def dictionary(name: str, verify: bool = False) -> frozenset:
    """The words ladders are searched through (generation, solving); with `verify`, every
    word the verifier accepts (a superset: any real English word)."""
    words = set()
    for fn in (_VERIFY_FILES if verify else _FILES)[name]:
        words.update(load_words(fn))
    return frozenset(words)


@lru_cache(maxsize=None)
def graph(name: str, length: int) -> dict[str, tuple[str, ...]]:
    """Words of `length` letters -> their one-letter neighbours (sorted)."""
    words = sorted(w for w in dictionary(name) if len(w) == length)
    buckets: dict[str, list[str]] = {}
    for w in words:
        for i in range(length):
            buckets.setdefault(w[:i] + "*" + w[i + 1:], []).append(w)
    adj = {}
    for w in words:
        nb = set()
        for i in range(length):
            nb.update(buckets[w[:i] + "*" + w[i + 1:]])
        nb.discard(w)
        adj[w] = tuple(sorted(nb))
    return adj


def bfs(adj, start, target=None):
    """Breadth-first search from `start`: (parent map, layers), stopping after the layer
    that contains `target` (when given)."""
    parent = {start: None}
    layers = [[start]]
    while layers[-1]:
        nxt = []
        for u in layers[-1]:
            for v in adj.get(u, ()):
                if v not in parent:
                    parent[v] = u
                    nxt.append(v)
        if not nxt:
            break
        layers.append(nxt)
        if target is not None and target in parent:
            break
    return parent, layers


def back_trace(parent, target):
    path = [target]
    while parent[path[-1]] is not None:
        path.append(parent[path[-1]])
    return path[::-1]


def one_letter_apart(a: str, b: str) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


class WordLadder(Task):
    name = "word_ladder"
    official = "WordLadder"
    group = "Puzzles"
    answer_shape = formats.WORDS

    # ---- generation and solving --------------------------------------------------------
    def make(self, rng, level):
        length, lo, hi = LEVELS[level]
        adj = graph(COMMON, length)
        starts = [w for w in sorted(adj) if adj[w]]
        for _ in range(200):
            start = rng.choice(starts)
            parent, layers = bfs(adj, start)
            options = [d for d in range(lo, hi + 1) if d < len(layers)]
            if not options:
                continue
            d = rng.choice(options)
            target = rng.choice(sorted(layers[d]))
            state = {"start_word": start, "target_word": target, "word_length": length,
                     "max_steps": d + SLACK, "dictionary": COMMON}
            path = self.solve(state)
            assert path is not None and len(path) - 1 == d
            return state, path, {"word_length": length, "optimal_steps": d,
                                 "max_steps": d + SLACK, "slack": SLACK}
        raise RuntimeError(f"word_ladder: no pair found at level {level}")

    def solve(self, state):
        adj = graph(state["dictionary"], state["word_length"])
        start, target = state["start_word"], state["target_word"]
        if start not in adj or target not in adj:
            return None
        parent, _ = bfs(adj, start, target)
        return back_trace(parent, target) if target in parent else None

    def format_answer(self, solution) -> str:
        return " -> ".join(solution)

    # ---- verification ------------------------------------------------------------------
    @staticmethod
    def parse(answer: str) -> list[str] | None:
        """'cold -> cord -> ...', '["cold", "cord"]', 'cold, cord', 'COLD CORD' -> words."""
        if len(answer) > 30 * MAX_ANSWER_WORDS:
            return None
        words = _WORD_RE.findall(answer)
        if not words or len(words) > MAX_ANSWER_WORDS:
            return None
        if not _LADDER_SEPARATORS.fullmatch(_WORD_RE.sub(" ", answer)):
            return None
        return [w.lower() for w in words]

    def check(self, answer, state) -> bool:
        words = self.parse(answer)
        if words is None or len(words) < 2:
            return False
        if words[0] != state["start_word"] or words[-1] != state["target_word"]:
            return False
        if len(words) - 1 > state["max_steps"]:
            return False
        vocab = dictionary(state["dictionary"], verify=True)
        if any(w not in vocab for w in words):
            return False
        return all(one_letter_apart(a, b) for a, b in zip(words, words[1:]))

    # ---- presentation ------------------------------------------------------------------
    def render(self, state):
        start, target = state["start_word"].upper(), state["target_word"].upper()
        n = len(start)
        box, gap = 64, 10
        w = max(560, n * (box + gap) + 160)
        h = 470
        img, d = draw.canvas(w, h)
        draw.title(d, w, "Word Ladder", size=26, y=30)

        def word_row(word, y, label):
            x0 = (w - (n * (box + gap) - gap)) / 2
            draw.center_text(d, (x0 - 52, y + box / 2), label, size=16, fill=draw.GREY)
            for i, ch in enumerate(word):
                x = x0 + i * (box + gap)
                d.rectangle([x, y, x + box, y + box], fill=(235, 242, 255), outline=draw.BLUE, width=3)
                draw.center_text(d, (x + box / 2, y + box / 2), ch, size=36)

        word_row(start, 70, "start")
        mid = 70 + box + 20
        bot = h - 60 - box
        d.line([(w / 2, mid), (w / 2, bot - 20)], fill=draw.BLUE, width=4)
        d.polygon([(w / 2, bot - 8), (w / 2 - 12, bot - 28), (w / 2 + 12, bot - 28)], fill=draw.BLUE)
        k = state["max_steps"]
        limit = f"at most {k} steps" + (f" (shortest: {k - SLACK})" if state["dictionary"] == COMMON else "")
        d.text((w / 2 + 18, (mid + bot) / 2 - 14), limit, font=draw.font(18), fill=draw.RED, anchor="lm")
        d.text((w / 2 + 18, (mid + bot) / 2 + 12), "one letter per step", font=draw.font(16),
               fill=draw.GREY, anchor="lm")
        word_row(target, bot, "target")
        return [img]

    def _limits(self, state) -> str:
        k = state["max_steps"]
        if state["dictionary"] == COMMON:
            return (f"The shortest ladder through common words takes {k - SLACK} steps; any "
                    f"valid ladder of at most {k} steps (the shortest length plus a slack of {SLACK}) is accepted.")
        return f"Use at most {k} steps."

    def question(self, state, text_only=False) -> str:
        n = state["word_length"]
        vocab = "an English word"
        rules = (f"Word ladder: change the start word into the target word one letter at a time. "
                 f"Each step replaces exactly one letter (letters keep their positions; no adding, "
                 f"removing or reordering letters), and every word in the ladder, the start and "
                 f"the target included, must be {vocab} of {n} letters (dictionary words, "
                 f"plurals and other inflected forms included; no proper nouns or abbreviations). "
                 + self._limits(state))
        if text_only:
            where = (f"Start word: {state['start_word']}\nTarget word: {state['target_word']}")
        else:
            where = ("The image shows the start word at the top and the target word at the "
                     "bottom, with the step limit next to the arrow.")
        fmt = ("Answer with the whole ladder from the start word to the target word, lower-case "
               "words separated by ' -> ', for example: hug -> bug -> bog -> dog")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_from_str(self, text):
        v = parse_literal(text) if isinstance(text, str) else text
        if not isinstance(v, dict) or not {"start_word", "target_word"} <= set(v):
            raise ValueError("word_ladder: expected a dict with start_word and target_word")
        if "dictionary" in v:  # ours
            return v
        # official: {"solution": [...], "start_word": ..., "target_word": ...}
        start, target = str(v["start_word"]).lower(), str(v["target_word"]).lower()
        state = {"start_word": start, "target_word": target, "word_length": len(start),
                 "max_steps": 0, "dictionary": OFFICIAL}
        best = self.solve(state)
        limit = len(best) - 1 + SLACK if best else 0
        sol = v.get("solution")
        if isinstance(sol, list) and len(sol) >= 2:
            limit = max(limit, len(sol) - 1)
        state["max_steps"] = limit
        return state

    # ---- skeleton ----------------------------------------------------------------------
    def skeleton(self, state):
        start, target = state["start_word"], state["target_word"]
        adj = graph(state["dictionary"], state["word_length"])
        steps = [
            step("rule", "Each step changes exactly one letter in place, every word must be a "
                         f"{'common ' if state['dictionary'] == COMMON else ''}English word of "
                         f"{state['word_length']} letters, and the ladder may have at most "
                         f"{state['max_steps']} steps. A breadth-first search over words finds "
                         "the shortest ladder: layer k holds the words exactly k changes away."),
            step("read", f"Start word: {start}. Target word: {target}."),
        ]
        parent, layers = bfs(adj, start, target)
        for k, layer in enumerate(layers[1:], 1):
            shown = sorted(layer)
            if target in layer:
                shown = [target] + [w for w in shown if w != target]
            txt = ", ".join(shown[:14]) + (f" (+{len(shown) - 14} more)" if len(shown) > 14 else "")
            steps.append(step("step", f"Layer {k} ({len(layer)} new word"
                                      f"{'s' if len(layer) != 1 else ''} one letter away from "
                                      f"layer {k - 1}): {txt}."))
        if target not in parent:
            steps.append(step("check", f"The search ran out of words before reaching {target}."))
            steps.append(step("answer", "No ladder"))
            return steps
        path = back_trace(parent, target)
        steps.append(step("step", f"{target} first appears in layer {len(path) - 1}, so the "
                                  f"shortest ladder has {len(path) - 1} steps."))
        chain = " <- ".join(reversed(path))
        steps.append(step("step", f"Following each word back to the word it was reached from: "
                                  f"{chain}."))
        changes = []
        for a, b in zip(path, path[1:]):
            i = next(j for j in range(len(a)) if a[j] != b[j])
            changes.append(f"{a}->{b} (letter {i + 1}: {a[i]}->{b[i]})")
        steps.append(step("check", "One letter per step: " + "; ".join(changes) + f". All "
                                   f"{len(path)} words are in the word list, the ladder starts at "
                                   f"{start}, ends at {target}, and its {len(path) - 1} steps are "
                                   f"within the limit of {state['max_steps']}."))
        steps.append(step("answer", self.format_answer(path)))
        return steps


TASK = WordLadder()
