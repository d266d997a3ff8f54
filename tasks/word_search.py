"""Word search: find where the named word is hidden in a square grid of letters.

Answer convention (the official prompt): `WORD DIRECTION (x, y) @` where (x, y) is the cell
of the FIRST letter, x = column counted from 1 at the left, y = row counted from 1 at the
top, DIRECTION is one of N NE E SE S SW W NW (compass, N = up) and `@` is a literal end mark
that the official gold answers carry (e.g. `TIGER SE (2, 3) @`). We also accept the
direction after the coordinate, full direction names (north-east, up, ...), lower case,
and a missing `@`.

The generator hides the word in any of the 8 directions and proves that it occurs exactly
once in the grid (palindromes are not used), so the answer is unique. Higher levels have
bigger grids, longer words, filler letters biased toward the word's own letters, and
decoys (the word minus its last letter) that start false trails.

Official records store only the letter grid (`initial_state`); the word is the first token
of the record's `answer` (the official prompt names it only in the image).
"""
from __future__ import annotations

import re
import string

from . import draw, formats
from .base import Task, parse_literal, step

SIZES = {1: 5, 2: 7, 3: 10, 4: 12, 5: 15}
WORD_LEN = {1: (3, 5), 2: (4, 6), 3: (5, 7), 4: (5, 8), 5: (6, 9)}
DECOYS = {1: 0, 2: 1, 3: 2, 4: 4, 5: 6}
BIAS = {1: 0.0, 2: 0.1, 3: 0.2, 4: 0.25, 5: 0.3}  # share of filler letters drawn from the word

# (name, d_row, d_col) in the order the solver tries them
DIRS = (("N", -1, 0), ("NE", -1, 1), ("E", 0, 1), ("SE", 1, 1),
        ("S", 1, 0), ("SW", 1, -1), ("W", 0, -1), ("NW", -1, -1))
DIR_VEC = {n: (dr, dc) for n, dr, dc in DIRS}
_ALIASES = {
    "N": "N", "NORTH": "N", "UP": "N", "U": "N",
    "S": "S", "SOUTH": "S", "DOWN": "S", "D": "S",
    "E": "E", "EAST": "E", "RIGHT": "E", "R": "E",
    "W": "W", "WEST": "W", "LEFT": "W", "L": "W",
    "NE": "NE", "NORTHEAST": "NE", "UPRIGHT": "NE",
    "NW": "NW", "NORTHWEST": "NW", "UPLEFT": "NW",
    "SE": "SE", "SOUTHEAST": "SE", "DOWNRIGHT": "SE",
    "SW": "SW", "SOUTHWEST": "SW", "DOWNLEFT": "SW",
}
WORDS = """CAT DOG PIG COW FOX BEE OWL RAT BAT ANT ELK EMU YAK APE HEN EEL RAM GNU
BEAR DEER WOLF LION GOAT DUCK FROG SEAL HARE MOLE CRAB TOAD SWAN MOTH WASP LAMB CROW DOVE
HAWK KIWI MULE PUMA LYNX IBIS MINK NEWT ORCA SLUG
HORSE SHEEP TIGER ZEBRA MOUSE CAMEL EAGLE GOOSE HYENA KOALA LEMUR LLAMA MOOSE OTTER PANDA
RAVEN SHARK SKUNK SNAIL SNAKE SQUID STORK TROUT WHALE BISON CRANE FINCH HERON ROBIN OKAPI
TAPIR VIPER DINGO GECKO
MONKEY DONKEY TURTLE RABBIT BEAVER BADGER FALCON FERRET GIBBON IGUANA JAGUAR LIZARD MAGPIE
OCELOT PARROT PIGEON PYTHON SALMON WALRUS WEASEL COUGAR CONDOR TOUCAN
GIRAFFE PELICAN PENGUIN OSTRICH LEOPARD HAMSTER DOLPHIN SPARROW CHEETAH BUFFALO GORILLA
MEERKAT PANTHER RACCOON LOBSTER OCTOPUS
ELEPHANT KANGAROO ANTELOPE FLAMINGO SQUIRREL TORTOISE HEDGEHOG SEAHORSE PEACOCK
CROCODILE ALLIGATOR PORCUPINE ARMADILLO BUTTERFLY""".split()
# The official generator's word list (used when an official record names no word).
OFFICIAL_WORDS = frozenset(w.upper() for w in (
    "dog cat pig horse donkey turtle goat sheep cow lion tiger elephant giraffe zebra monkey "
    "bird fish bear deer wolf fox rabbit mouse duck bee").split())

_DIR_TOKEN = r"([A-Za-z][A-Za-z\- ]{0,14}?)"
_COORD = r"\(\s*([+-]?\d{1,3})\s*,\s*([+-]?\d{1,3})\s*\)"
_ANSWER_RE = re.compile(r"([A-Za-z]{1,20})\s+(?:" + _DIR_TOKEN + r"\s*" + _COORD + "|"
                        + _COORD + r"\s*" + _DIR_TOKEN + r")\s*@?\s*\.?")


def occurrences(grid, word):
    """Every (row, col, direction) where `word` reads from (row, col) in that direction."""
    n, out = len(grid), []
    for r in range(n):
        for c in range(len(grid[r])):
            if grid[r][c] != word[0]:
                continue
            for name, dr, dc in DIRS:
                er, ec = r + dr * (len(word) - 1), c + dc * (len(word) - 1)
                if not (0 <= er < n and 0 <= ec < len(grid[0])):
                    continue
                if all(grid[r + dr * i][c + dc * i] == word[i] for i in range(len(word))):
                    out.append((r, c, name))
    return out


def direction(token: str) -> str | None:
    return _ALIASES.get(re.sub(r"[\s\-_]", "", token).upper())


class WordSearch(Task):
    name = "word_search"
    official = "wordsearch"
    group = "Puzzles"
    answer_shape = formats.WORD_AT

    def make(self, rng, level):
        n = SIZES[level]
        lo, hi = WORD_LEN[level]
        pool = [w for w in WORDS if lo <= len(w) <= min(hi, n) and w != w[::-1]]
        word = rng.choice(pool)
        letters = string.ascii_uppercase
        for _ in range(100):
            grid = [[rng.choice(word) if rng.random() < BIAS[level] else rng.choice(letters)
                     for _ in range(n)] for _ in range(n)]
            for _ in range(DECOYS[level]):  # the word minus its last letter, anywhere
                self._place(rng, grid, word[:-1])
            r, c, dname = self._place(rng, grid, word)
            if occurrences(grid, word) == [(r, c, dname)]:
                state = {"grid": grid, "word": word}
                return state, [word, dname, c + 1, r + 1], {
                    "size": n, "word_length": len(word), "decoys": DECOYS[level],
                    "direction": dname}
        raise RuntimeError("word_search: could not hide the word exactly once")

    @staticmethod
    def _place(rng, grid, word):
        n = len(grid)
        while True:
            dname, dr, dc = rng.choice(DIRS)
            r, c = rng.randrange(n), rng.randrange(n)
            er, ec = r + dr * (len(word) - 1), c + dc * (len(word) - 1)
            if 0 <= er < n and 0 <= ec < n:
                for i, ch in enumerate(word):
                    grid[r + dr * i][c + dc * i] = ch
                return r, c, dname

    def solve(self, state):
        word = state.get("word")
        if not word:
            return None
        found = occurrences(state["grid"], word)
        if not found:
            return None
        r, c, dname = found[0]
        return [word, dname, c + 1, r + 1]

    def format_answer(self, solution) -> str:
        word, dname, x, y = solution
        return f"{word} {dname} ({x}, {y}) @"

    @staticmethod
    def parse(answer: str):
        if len(answer) > 120:
            return None
        m = _ANSWER_RE.fullmatch(answer.strip())
        if not m:
            return None
        word = m.group(1).upper()
        if m.group(2) is not None:
            dtok, x, y = m.group(2), m.group(3), m.group(4)
        else:
            x, y, dtok = m.group(5), m.group(6), m.group(7)
        d = direction(dtok)
        if d is None:
            return None
        return word, d, int(x), int(y)

    def check(self, answer, state) -> bool:
        parsed = self.parse(answer)
        if parsed is None:
            return False
        word, d, x, y = parsed
        target = state.get("word")
        if target is not None and word != target.upper():
            return False
        if target is None and word not in OFFICIAL_WORDS:
            return False
        grid = state["grid"]
        rows, cols = len(grid), len(grid[0])
        dr, dc = DIR_VEC[d]
        r0, c0 = y - 1, x - 1
        for i, ch in enumerate(word):
            r, c = r0 + dr * i, c0 + dc * i
            if not (0 <= r < rows and 0 <= c < cols) or str(grid[r][c]).upper() != ch:
                return False
        return True

    # ---- presentation ------------------------------------------------------------------
    def render(self, state):
        grid, word = state["grid"], state.get("word") or "?"
        n = len(grid)
        cell = 52 if n <= 7 else (44 if n <= 12 else 40)
        left, top = 60, 110
        w = max(left + n * cell + 40, 420)
        h = top + n * cell + 40
        img, d = draw.canvas(w, h)
        draw.title(d, w, f"Find the word: {word}", size=24, y=28)
        draw.center_text(d, (w / 2, 58), "x = column (from 1, left to right), "
                                         "y = row (from 1, top to bottom)", size=14, fill=draw.GREY)
        ox = left + (w - left - 40 - n * cell) / 2
        for i in range(n):
            draw.center_text(d, (ox + i * cell + cell / 2, top - 16), i + 1, size=15, fill=draw.BLUE)
            draw.center_text(d, (ox - 22, top + i * cell + cell / 2), i + 1, size=15, fill=draw.BLUE)
        for r in range(n):
            for c in range(n):
                x, y = ox + c * cell, top + r * cell
                d.rectangle([x, y, x + cell, y + cell], outline=draw.LIGHT, fill=draw.WHITE)
                draw.center_text(d, (x + cell / 2, y + cell / 2), grid[r][c], size=int(cell * 0.5))
        d.rectangle([ox, top, ox + n * cell, top + n * cell], outline=draw.BLACK, width=2)
        return [img]

    def question(self, state, text_only=False) -> str:
        n = len(state["grid"])
        word = state.get("word")
        named = f"the word {word}" if text_only else "the word named above the grid in the image"
        rules = (f"Word search: {named} is hidden once in a {n}x{n} grid of letters. It "
                 "reads in a straight line in one of 8 directions: horizontally, vertically or "
                 "diagonally, forwards or backwards. Find where it starts and which way it runs.\n"
                 "Coordinates: (x, y) with x = column counted from 1 at the left and y = row "
                 "counted from 1 at the top. Directions: N (up), S (down), E (right), W (left), "
                 "NE (up-right), NW (up-left), SE (down-right), SW (down-left).")
        if text_only:
            rows = "\n".join(" ".join(row) for row in state["grid"])
            where = f"The grid, row 1 first:\n{rows}"
        else:
            where = ("The image shows the grid with column numbers (x) above it and row numbers "
                     "(y) on its left, and the word to find above the grid.")
        fmt = ("Answer as: WORD DIRECTION (x, y) @ where (x, y) is the cell of the word's first "
               "letter and @ ends the answer, for example: CAT SW (4, 2) @")
        return f"{rules}\n\n{where}\n\n{fmt}"

    def state_from_str(self, text):
        v = parse_literal(text) if isinstance(text, str) else text
        if isinstance(v, list):  # official: the letter grid only
            v = {"grid": v, "word": None}
        if not isinstance(v, dict) or not isinstance(v.get("grid"), list):
            raise ValueError("word_search: expected a letter grid")
        return v

    def state_from_record(self, record):
        state = self.state_from_str(record["initial_state"])
        if state.get("word") is None:
            first = str(record.get("answer") or "").strip().split(" ")[0]
            if first.isalpha():
                state = dict(state, word=first.upper())
        return state

    # ---- skeleton ----------------------------------------------------------------------
    def skeleton(self, state):
        grid, word = state["grid"], state["word"]
        n = len(grid)
        steps = [
            step("rule", f"The word {word} lies in a straight line in one of 8 directions. Scan "
                         f"the grid row by row for its first letter {word[0]}; from each one, "
                         f"read along every direction until a letter differs."),
            step("read", "Grid rows (y = 1 first): " + " / ".join("".join(r) for r in grid)),
        ]
        anchors = [(r, c) for r in range(n) for c in range(n) if grid[r][c] == word[0]]
        steps.append(step("step", f"{word[0]} appears {len(anchors)} time"
                                  f"{'s' if len(anchors) != 1 else ''}."))
        shown = 0
        for r, c in anchors:
            tries, best = [], 0
            hit = None
            for name, dr, dc in DIRS:
                read = ""
                for i in range(len(word)):
                    rr, cc = r + dr * i, c + dc * i
                    if not (0 <= rr < n and 0 <= cc < n):
                        read += "|"
                        break
                    read += grid[rr][cc]
                    if grid[rr][cc] != word[i]:
                        break
                k = sum(1 for a, b in zip(read, word) if a == b and a != "|")
                if read == word:
                    hit = name
                    break
                if k >= 2:
                    tries.append(f"{name} reads {read.rstrip('|')}"
                                 f"{' then the edge' if read.endswith('|') else ''}")
                best = max(best, k)
            where = f"({c + 1}, {r + 1})"
            if hit:
                if shown > 60:
                    steps.append(step("step", f"... {shown - 60} further starting cells ruled "
                                              f"out the same way."))
                steps.append(step("step", f"From {where}: "
                                          + (("; ".join(tries) + "; ") if tries else "")
                                          + f"{hit} reads {word}. Found it."))
                break
            if shown < 60:
                if tries:
                    steps.append(step("backtrack", f"From {where}: " + "; ".join(tries)
                                      + f" - each breaks off before the end, so {where} is a dead "
                                        f"end; back to scanning."))
                else:
                    steps.append(step("step", f"From {where}: no direction matches even the "
                                              f"second letter {word[1]}."))
            shown += 1
        sol = self.solve(state)
        word, dname, x, y = sol
        dr, dc = DIR_VEC[dname]
        cells = ", ".join(f"{word[i]}({x + dc * i},{y + dr * i})" for i in range(len(word)))
        steps.append(step("check", f"Reading {dname} from ({x}, {y}): {cells} spells {word}; "
                                   f"no other start and direction spells it."))
        steps.append(step("answer", self.format_answer(sol)))
        return steps


TASK = WordSearch()
