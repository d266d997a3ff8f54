"""H-index: the largest h such that h papers have at least h citations each.

Solver: sort the citation counts from high to low and walk down the ranks while the paper
at rank i (1-based) still has at least i citations.
"""
from ._arrays import ArrayTask
from .base import step


class HIndex(ArrayTask):
    name = "h_index"
    official = "HIndex"
    min_value = 0
    noun = "citation count"
    index_noun = "paper"
    caption = "Citations per paper"
    rules = ("Each bar is one paper of a researcher and its height is the number of times "
             "that paper has been cited. The researcher's h-index is the largest number h "
             "such that h of the papers have each been cited at least h times. What is the "
             "h-index?")

    def draw_values(self, rng, level):
        # Citation counts are skewed (many papers with few citations, a few with many):
        # max_value * u^2. Rejects the degenerate h = 0 and h = number of papers.
        vmax, lo, hi = self.levels[level]
        while True:
            n = rng.randint(lo, hi)
            values = [int(vmax * rng.random() ** 2 + 0.5) for _ in range(n)]
            if 0 < self.solve(values) < n:
                return values

    def solve(self, values):
        return self._walk(values)[0]

    @staticmethod
    def _walk(values):
        ranked = sorted(values, reverse=True)
        h, trace = 0, []
        for i, c in enumerate(ranked, 1):
            ok = c >= i
            trace.append((i, c, ok))
            if not ok:
                break
            h = i
        return h, ranked, trace

    def skeleton(self, state):
        h, ranked, trace = self._walk(state)
        steps = [
            step("rule", "Sort the citation counts from high to low; the h-index is the last "
                         "rank i (counting from 1) whose paper still has at least i citations."),
            step("read", f"Citations by paper: {state}."),
            step("step", f"Sorted from high to low: {ranked}."),
        ]
        for i, c, ok in trace:
            if ok:
                steps.append(step("step", f"Rank {i}: {c} citations >= {i}, so h is at least "
                                          f"{i}."))
            else:
                steps.append(step("step", f"Rank {i}: {c} citations < {i}; stop."))
        at_least_h = sum(1 for c in state if c >= h)
        at_least_h1 = sum(1 for c in state if c >= h + 1)
        steps.append(step("check", f"{at_least_h} papers have at least {h} citations (>= {h}), "
                                   f"but only {at_least_h1} have at least {h + 1} (< {h + 1})."))
        steps.append(step("answer", str(h)))
        return steps


TASK = HIndex()
