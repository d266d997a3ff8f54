"""Largest rectangle in a histogram (bars of width 1).

Solver: a stack of positions with increasing heights. When a bar lower than (or equal
to) the top arrives, the top is popped: its rectangle spans from just after the new top
of the stack up to just before the current bar. A height-0 bar at the end flushes the
stack.
"""
from ._arrays import ArrayTask
from .base import step


def largest_brute(h):
    """Every range [i, j] with its minimum height. Used as the skeleton's independent check."""
    best = 0
    for i in range(len(h)):
        m = h[i]
        for j in range(i, len(h)):
            m = min(m, h[j])
            best = max(best, m * (j - i + 1))
    return best


class LargestRectangle(ArrayTask):
    name = "largest_rectangle"
    official = "LargestRectangleInHistogram"
    min_value = 0
    noun = "height"
    index_noun = "position"
    caption = "Histogram (every bar has width 1)"
    rules = ("The bars form a histogram: each bar has width 1 and the given height, and "
             "neighbouring bars touch. What is the area of the largest rectangle that fits "
             "entirely inside the histogram (its sides parallel to the axes)?")

    def draw_values(self, rng, level):
        while True:
            values = super().draw_values(rng, level)
            if self.solve(values) > 0:
                return values

    def solve(self, values):
        return self._stack(values)[0]

    @staticmethod
    def _stack(h):
        n, stack, best, trace = len(h), [], 0, []
        for i in range(n + 1):
            cur = h[i] if i < n else 0
            pops = []
            while stack and h[stack[-1]] >= cur:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = h[top] * (i - left)
                best = max(best, area)
                pops.append((top, left, i - 1, area))
            if i < n:
                stack.append(i)
            trace.append((i, cur, pops, list(stack), best))
        return best, trace

    def skeleton(self, state):
        h = state
        best, trace = self._stack(h)
        steps = [
            step("rule", "Keep a stack of positions with increasing heights. A bar that is not "
                         "higher than the top pops it: the popped bar's rectangle spans from "
                         "just after the next stack entry to just before the current bar. A "
                         "height-0 bar at the end pops everything."),
            step("read", f"Heights by position: {h}."),
        ]
        for i, cur, pops, stack, b in trace:
            who = f"Position {i} (height {cur})" if i < len(h) else "End (height 0)"
            pop_txt = "; ".join(f"pop {t} (height {h[t]}, positions {lo}-{hi}, area "
                                f"{h[t]} x {hi - lo + 1} = {a})" for t, lo, hi, a in pops)
            act = (pop_txt + ("; then push" if i < len(h) else "")) if pops else "push"
            st = "[" + ", ".join(f"{p}:{h[p]}" for p in stack) + "]"
            steps.append(step("step", f"{who}: {act}. Stack (position:height) {st}; best {b}."))
        steps.append(step("check", f"Trying every range of positions with its lowest bar "
                                   f"directly also gives {largest_brute(h)}."))
        steps.append(step("answer", str(best)))
        return steps


TASK = LargestRectangle()
