"""Tower of Hanoi from an arbitrary legal position: bring every disk onto peg 3.

State: the official list of three pegs, each listed bottom to top, disks numbered by size
(1 = smallest): `[[1], [3, 2], []]` means peg 1 holds disk 1, peg 2 holds disk 3 with
disk 2 on top of it, peg 3 is empty.

Levels (the official generator always uses 3 disks and ignores the level; here the level
sets the disk count and a window on the optimal number of moves):
    disks 3/4/5/6/7, optimal moves in 3-7 / 7-15 / 12-31 / 24-50 / 40-70.
Start positions are random legal configurations (each disk on a random peg), not only the
classic full tower.

Solver: the recursive algorithm generalised to any position, which is optimal: to put the
disks 1..k on peg t, if disk k is already on t, put 1..k-1 on t; otherwise put 1..k-1 on
the third peg, move k to t, and put 1..k-1 on t.

Answer: `(disk,peg) (disk,peg) ...` with 1-based pegs (the official format). Verified by
replay: each named disk must be on top of its peg and may not land on a smaller disk (or
stay where it is); at the end all disks are on peg 3. Any legal sequence that reaches the
goal passes, with no cap relative to the optimum (only a hard cap of 5000 moves so that
checking is bounded).
"""
from __future__ import annotations

from . import draw, formats
from ._games import cap, parse_pairs
from .base import Task, parse_literal, step

LEVELS = {1: (3, 3, 7), 2: (4, 7, 15), 3: (5, 12, 31), 4: (6, 24, 50), 5: (7, 40, 70)}
MAX_MOVES = 5000


def plan(pegs, trace=None):
    """Optimal moves [(disk, to_peg 1-based)] that gather every disk on peg 3."""
    pos = {}
    for i, peg in enumerate(pegs):
        for d in peg:
            pos[d] = i
    moves = []

    def span(k):
        return "disk 1" if k == 1 else f"disks 1-{k}"

    def gather(k, target, depth):
        if k == 0:
            return
        if pos[k] == target:
            if trace is not None:
                trace.append((depth, f"Disk {k} is already on peg {target + 1}; next make the "
                                     f"smaller disks join it there."))
            gather(k - 1, target, depth)
            return
        spare = 3 - pos[k] - target
        if trace is not None:
            trace.append((depth, f"Disk {k} sits on peg {pos[k] + 1} but must reach peg "
                                 f"{target + 1}: first park {span(k - 1)} on peg {spare + 1}."
                                 if k > 1 else
                                 f"Disk 1 sits on peg {pos[1] + 1}: move it to peg {target + 1}."))
        gather(k - 1, spare, depth + 1)
        moves.append((k, target + 1))
        pos[k] = target
        if trace is not None and k > 1:
            trace.append((depth, f"... then move disk {k} to peg {target + 1} (move "
                                 f"{len(moves)}), and bring {span(k - 1)} onto it."))
        gather(k - 1, target, depth + 1)

    gather(sum(len(p) for p in pegs), 2, 0)
    return moves


def replay(pegs, moves):
    """States after each move, or None at the first illegal move."""
    cur = [list(p) for p in pegs]
    out = [[list(p) for p in cur]]
    for disk, to in moves:
        if not 1 <= to <= 3:
            return None
        src = next((i for i, p in enumerate(cur) if p and p[-1] == disk), None)
        if src is None:                       # not a top disk (or no such disk)
            return None
        dst = cur[to - 1]
        if src == to - 1 or (dst and dst[-1] < disk):
            return None
        cur[src].pop()
        dst.append(disk)
        out.append([list(p) for p in cur])
    return out


def valid_state(pegs) -> bool:
    if not (isinstance(pegs, list) and len(pegs) == 3 and all(isinstance(p, list) for p in pegs)):
        return False
    disks = [d for p in pegs for d in p]
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in disks):
        return False
    if sorted(disks) != list(range(1, len(disks) + 1)) or len(disks) > 20:
        return False
    return all(all(a > b for a, b in zip(p, p[1:])) for p in pegs)


class Hanoi(Task):
    name = "hanoi"
    official = "hanoi"
    group = "Games"
    answer_shape = formats.PAIRS

    def make(self, rng, level):
        n, lo, hi = LEVELS[level]
        for _ in range(10_000):
            pegs = [[], [], []]
            for d in range(n, 0, -1):          # largest first: each peg stays sorted
                pegs[rng.randrange(3)].append(d)
            moves = plan(pegs)
            if lo <= len(moves) <= hi:
                return pegs, [list(m) for m in moves], {"disks": n, "optimal_moves": len(moves),
                                                        "min_moves": lo, "max_moves": hi}
        raise RuntimeError("hanoi: no start position in the window")

    def solve(self, state):
        return [list(m) for m in plan(state)]

    def format_answer(self, solution) -> str:
        return " ".join(f"({d},{p})" for d, p in solution)

    def check(self, answer, state) -> bool:
        moves = parse_pairs(answer, max_pairs=MAX_MOVES)
        if moves is None or not valid_state(state):
            return False
        states = replay(state, moves)
        if states is None:
            return False
        final = states[-1]
        return not final[0] and not final[1]

    def state_to_str(self, state) -> str:
        return str(state)

    def state_from_str(self, text):
        v = parse_literal(text)
        if isinstance(v, dict):                 # tolerate {'pegs': [...]} style wrappers
            v = next((x for x in v.values() if isinstance(x, list)), None)
        if isinstance(v, tuple):
            v = list(v)
        v = [list(p) for p in v] if isinstance(v, list) else v
        if not valid_state(v):
            raise ValueError(f"hanoi: not three legal pegs: {str(text)[:60]!r}")
        return v

    def render(self, state):
        n = sum(len(p) for p in state)
        unit, dh = 14, 30
        max_w = 30 + n * unit * 2
        col_w = max_w + 30
        top, base_h = 70, 60
        h = top + (n + 1) * dh + base_h
        w = 3 * col_w + 40
        img, d = draw.canvas(w, h)
        draw.title(d, w, "Tower of Hanoi (disk number = size)", size=18, y=20)
        ground = top + (n + 1) * dh
        d.rectangle([15, ground, w - 15, ground + 8], fill=(110, 80, 50))
        palette = [(214, 69, 65), (243, 156, 18), (241, 196, 15), (46, 204, 113),
                   (52, 152, 219), (155, 89, 182), (26, 188, 156), (230, 126, 34)]
        for i, peg in enumerate(state):
            cx = 20 + col_w * i + col_w / 2
            d.rectangle([cx - 4, top, cx + 4, ground], fill=(90, 60, 40))
            for k, disk in enumerate(peg):
                bw = 30 + disk * unit * 2
                y1 = ground - k * dh
                d.rounded_rectangle([cx - bw / 2, y1 - dh + 3, cx + bw / 2, y1], radius=6,
                                    fill=palette[(disk - 1) % len(palette)], outline=draw.BLACK,
                                    width=2)
                draw.center_text(d, (cx, y1 - dh / 2 + 1), disk, size=17)
            draw.center_text(d, (cx, ground + 32), f"Peg {i + 1}", size=18)
        return [img]

    RULES = ("Solve this Tower of Hanoi puzzle. There are three pegs, numbered 1, 2 and 3 from "
             "left to right, and disks of different sizes numbered by size (1 is the smallest). "
             "A move takes the top disk of one peg and puts it on another peg; a disk may never "
             "be placed on a smaller disk. The disks do not start as a single tower: they are "
             "spread over the pegs. Goal: move all disks onto peg 3 (largest at the bottom).")

    def question(self, state, text_only=False) -> str:
        if text_only:
            where = (f"The current position is {state}: one list per peg (peg 1 first), each "
                     f"listed from the bottom disk to the top disk.")
        else:
            where = ("The image shows the three pegs with their disks; each disk is labelled with "
                     "its number (its size).")
        return (f"{self.RULES}\n\n{where}\n\nAnswer with the sequence of moves, each written as "
                f"(disk,peg) where disk is the number of the disk moved and peg is the peg (1, 2 "
                f"or 3) it is moved to, separated by spaces, for example: (1,3) (2,2) (1,2)")

    def skeleton(self, state):
        n = sum(len(p) for p in state)
        steps = [
            step("rule", "Move one top disk at a time, never onto a smaller disk; gather all disks "
                         "on peg 3. To put disks 1..k on a peg: if disk k is already there, just "
                         "gather 1..k-1 there too; otherwise first move 1..k-1 to the third peg, "
                         "move disk k, then bring 1..k-1 back on top of it."),
            step("read", f"Pegs (bottom to top): peg 1 {state[0]}, peg 2 {state[1]}, peg 3 "
                         f"{state[2]}; {n} disks."),
        ]
        trace = []
        moves = plan(state, trace)
        plan_steps = [step("step", ("  " * min(depth, 6)) + txt) for depth, txt in trace]
        steps += cap(plan_steps, 50, "planning steps")
        states = replay(state, moves)
        rep = [step("step", f"Move {i + 1}: disk {dsk} to peg {p} -> pegs {states[i + 1]}")
               for i, (dsk, p) in enumerate(moves)]
        steps += cap(rep, 80, "moves")
        steps.append(step("check", f"Replaying the {len(moves)} moves: each moves a top disk onto "
                                   f"an empty peg or a larger disk, and at the end pegs 1 and 2 "
                                   f"are empty and peg 3 holds {states[-1][2]}."))
        steps.append(step("answer", self.format_answer(moves)))
        return steps


TASK = Hanoi()
