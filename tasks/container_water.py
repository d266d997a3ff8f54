"""Container with most water: choose two bars; the water between them is the shorter bar's
height times their distance. The largest such area.

Solver: two pointers from both ends. The area of the current pair is recorded, then the
pointer at the shorter bar moves inward: any pair that keeps the shorter bar has a smaller
width and is capped by the same height, so it can never beat the current area.
"""
from ._arrays import ARRAY_LEVELS, ArrayTask
from .base import step


def best_pair_brute(h):
    """Every pair, directly: (area, i, j). Used as the skeleton's independent check."""
    best = (0, 0, 0)
    for i in range(len(h)):
        for j in range(i + 1, len(h)):
            a = min(h[i], h[j]) * (j - i)
            if a > best[0]:
                best = (a, i, j)
    return best


class ContainerWater(ArrayTask):
    name = "container_water"
    official = "ContainerWithMostWater"
    levels = {**ARRAY_LEVELS, 5: (100, 40, 70)}   # the spec: L5 length 40-70
    min_value = 1
    noun = "height"
    index_noun = "position"
    caption = "Line heights"
    rules = ("Each bar is a vertical line standing at its position. Pick two of the lines: "
             "together with the ground they form a container, which holds water up to the "
             "height of the shorter line, over the distance between the two positions. The "
             "amount of water is (distance between the positions) x (height of the shorter "
             "line). What is the largest amount of water any container can hold?")

    def draw_values(self, rng, level):
        while True:
            values = super().draw_values(rng, level)
            if self.solve(values) > 0:
                return values

    def solve(self, values):
        return self._two_pointers(values)[0]

    def _two_pointers(self, h):
        l, r, best, arg, trace = 0, len(h) - 1, 0, None, []
        while l < r:
            area = min(h[l], h[r]) * (r - l)
            if area > best:
                best, arg = area, (l, r)
            side = "left" if h[l] <= h[r] else "right"
            trace.append((l, r, area, best, side))
            if side == "left":
                l += 1
            else:
                r -= 1
        return best, arg, trace

    def skeleton(self, state):
        h = state
        best, arg, trace = self._two_pointers(h)
        steps = [
            step("rule", "Area of a pair = distance x the shorter height. Two pointers: start "
                         "at both ends, record the area, then move the pointer at the shorter "
                         "line inward (keeping it could only shrink the width under the same "
                         "height cap)."),
            step("read", f"Heights by position: {h}."),
        ]
        for l, r, area, b, side in trace:
            steps.append(step("step", f"Left {l} (height {h[l]}), right {r} (height {h[r]}): "
                                      f"{r - l} x {min(h[l], h[r])} = {area}; best so far {b}. "
                                      f"Move the {side} pointer."))
        brute = best_pair_brute(h)[0]
        i, j = arg
        steps.append(step("check", f"The best pair is positions {i} and {j}: {j - i} x "
                                   f"min({h[i]}, {h[j]}) = {best}. Trying every pair directly "
                                   f"also gives {brute}."))
        steps.append(step("answer", str(best)))
        return steps


TASK = ContainerWater()
