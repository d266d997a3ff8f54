"""Trapping rain water: how much water the elevation bars hold after rain.

Solver: two pointers. Water above a position is min(highest bar to its left, highest bar
to its right) minus its height. Whichever side's current bar is lower is settled: its
side's running maximum is the binding one, because the other side already has a bar at
least as high.
"""
from ._arrays import ArrayTask
from .base import step


def water_by_maxima(h):
    """The direct formula, used as the skeleton's independent check."""
    n = len(h)
    left, right = [0] * n, [0] * n
    m = 0
    for i in range(n):
        m = max(m, h[i])
        left[i] = m
    m = 0
    for i in range(n - 1, -1, -1):
        m = max(m, h[i])
        right[i] = m
    return sum(min(left[i], right[i]) - h[i] for i in range(n))


class TrappingRain(ArrayTask):
    name = "trapping_rain"
    official = "trapping_rain_water"
    min_value = 0
    noun = "height"
    index_noun = "position"
    caption = "Elevation map (bar width 1)"
    rules = ("The bars are an elevation map: each position is a column of width 1 with the "
             "given height. After heavy rain, water collects wherever it is held in on both "
             "sides by higher columns (water spills off both ends of the map). How many units "
             "of water are trapped in total?")

    def draw_values(self, rng, level):
        while True:
            values = super().draw_values(rng, level)
            if self.solve(values) > 0:
                return values

    def solve(self, values):
        return self._two_pointers(values)[0]

    def _two_pointers(self, h):
        l, r, lmax, rmax, water, trace = 0, len(h) - 1, 0, 0, 0, []
        while l < r:
            if h[l] < h[r]:
                lmax = max(lmax, h[l])
                water += lmax - h[l]
                trace.append(("left", l, r, lmax, lmax - h[l], water))
                l += 1
            else:
                rmax = max(rmax, h[r])
                water += rmax - h[r]
                trace.append(("right", l, r, rmax, rmax - h[r], water))
                r -= 1
        return water, trace

    def skeleton(self, state):
        h = state
        water, trace = self._two_pointers(h)
        steps = [
            step("rule", "Water above a position = min(highest bar on its left, highest bar on "
                         "its right) - its height. Two pointers from both ends: the side with "
                         "the lower bar is settled by its own running maximum."),
            step("read", f"Heights by position: {h}."),
        ]
        for side, l, r, m, add, total in trace:
            p = l if side == "left" else r
            steps.append(step("step", f"Left {l} (height {h[l]}), right {r} (height {h[r]}): "
                                      f"settle the {side} one, position {p}; {side} max {m}, "
                                      f"so it holds {m} - {h[p]} = {add}; total {total}."))
        steps.append(step("check", f"Directly, summing min(max to the left, max to the right) "
                                   f"- height over all positions gives {water_by_maxima(h)}, "
                                   f"the same as {water}."))
        steps.append(step("answer", str(water)))
        return steps


TASK = TrappingRain()
