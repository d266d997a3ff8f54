"""Count hills and valleys (LeetCode 2210 semantics).

A position belongs to a hill if its closest different neighbours on the left and on the
right are both lower, and to a valley if both are higher; equal neighbours belong to the
same hill or valley (a plateau counts once), and a run touching either end has no
different neighbour on that side, so it counts as neither.

Solver: merge runs of equal values, then look at each inner run and its two neighbouring
runs.
"""
from ._arrays import ArrayTask
from .base import step


def runs_of(values):
    """[(value, first index, last index), ...] for the maximal runs of equal values."""
    runs = []
    for i, v in enumerate(values):
        if runs and runs[-1][0] == v:
            runs[-1][2] = i
        else:
            runs.append([v, i, i])
    return runs


def count_direct(values):
    """Per index, LeetCode's definition word for word (each plateau counted at its first
    index). Used as the skeleton's independent check."""
    n, count = len(values), 0
    for i in range(n):
        if i > 0 and values[i - 1] == values[i]:
            continue  # same hill/valley as its left neighbour
        left = next((values[j] for j in range(i - 1, -1, -1) if values[j] != values[i]), None)
        right = next((values[j] for j in range(i + 1, n) if values[j] != values[i]), None)
        if left is None or right is None:
            continue
        if (left < values[i] > right) or (left > values[i] < right):
            count += 1
    return count


class HillsValleys(ArrayTask):
    name = "hills_valleys"
    official = "CountHillsAndValleys"
    min_value = 0
    noun = "height"
    index_noun = "position"
    caption = "Terrain heights"
    rules = ("The array is a terrain profile. A position is part of a hill if the closest "
             "position with a different height on its left and the closest one on its right "
             "are both lower; it is part of a valley if both are higher. Neighbouring "
             "positions of equal height belong to the same hill or valley (a flat top or "
             "bottom counts once). A position needs a different-height neighbour on both "
             "sides to be part of a hill or valley, so flat runs at either end never count. "
             "How many hills and valleys are there in total?")

    def draw_values(self, rng, level):
        # Terrain with plateaus: a quarter of the steps repeat the previous height, so the
        # merging rule matters; at least one hill or valley.
        vmax, lo, hi = self.levels[level]
        while True:
            n = rng.randint(lo, hi)
            values = [rng.randint(self.min_value, vmax)]
            while len(values) < n:
                if rng.random() < 0.25:
                    values.append(values[-1])
                else:
                    values.append(rng.randint(self.min_value, vmax))
            if self.solve(values) > 0:
                return values

    def solve(self, values):
        runs = runs_of(values)
        return sum(1 for a, b, c in zip(runs, runs[1:], runs[2:])
                   if (a[0] < b[0] > c[0]) or (a[0] > b[0] < c[0]))

    def skeleton(self, state):
        runs = runs_of(state)

        def where(run):
            return f"position {run[1]}" if run[1] == run[2] else f"positions {run[1]}-{run[2]}"

        steps = [
            step("rule", "Merge equal neighbours into one run; an inner run is a hill if both "
                         "neighbouring runs are lower, a valley if both are higher. The first "
                         "and last runs never count."),
            step("read", f"Heights by position: {state}."),
            step("step", "Runs of equal heights: " + ", ".join(
                f"{r[0]} at {where(r)}" for r in runs) + f" ({len(runs)} runs)."),
        ]
        count = 0
        for a, b, c in zip(runs, runs[1:], runs[2:]):
            if a[0] < b[0] > c[0]:
                count += 1
                what = f"{a[0]} < {b[0]} > {c[0]}: a hill"
            elif a[0] > b[0] < c[0]:
                count += 1
                what = f"{a[0]} > {b[0]} < {c[0]}: a valley"
            else:
                what = f"{a[0]}, {b[0]}, {c[0]}: on a slope, neither"
            steps.append(step("step", f"Run {b[0]} at {where(b)}: {what}; count {count}."))
        steps.append(step("check", f"Going position by position with the definition (a flat "
                                   f"run counted once) also gives {count_direct(state)}."))
        steps.append(step("answer", str(count)))
        return steps


TASK = HillsValleys()
