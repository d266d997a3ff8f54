"""Longest strictly increasing subsequence: its length.

Solver: the O(n^2) table. dp[i] = length of the longest strictly increasing subsequence
ending at position i = 1 + the largest dp[j] over earlier positions j with a smaller
value (or 1 if there is none). The answer is the largest dp[i].
"""
from ._arrays import ArrayTask
from .base import step


class LIS(ArrayTask):
    name = "lis"
    official = "longest_increasing_subsequence"
    min_value = 1
    noun = "value"
    index_noun = "index"
    caption = "Sequence"
    rules = ("The bars show a sequence of numbers. A subsequence keeps some of the numbers in "
             "their original order (not necessarily next to each other). What is the length "
             "of the longest subsequence whose numbers are strictly increasing (each one "
             "larger than the one before it)?")

    def solve(self, values):
        return self._table(values)[0]

    @staticmethod
    def _table(a):
        dp, parent = [], []
        for i in range(len(a)):
            best_j = None
            for j in range(i):
                if a[j] < a[i] and (best_j is None or dp[j] > dp[best_j]):
                    best_j = j
            dp.append(1 if best_j is None else dp[best_j] + 1)
            parent.append(best_j)
        return (max(dp) if dp else 0), dp, parent

    def skeleton(self, state):
        a = state
        best, dp, parent = self._table(a)
        steps = [
            step("rule", "dp[i] = length of the longest strictly increasing subsequence ending "
                         "at index i: 1 + the largest dp[j] among earlier indices j with a "
                         "smaller value, or 1 if there is none. The answer is the largest dp."),
            step("read", f"Values by index: {a}."),
        ]
        top = 0
        for i in range(len(a)):
            top = max(top, dp[i])
            j = parent[i]
            if j is None:
                why = "no earlier value is smaller, so dp = 1"
            else:
                why = (f"best earlier smaller value is index {j} ({a[j]}, dp {dp[j]}), "
                       f"so dp = {dp[i]}")
            steps.append(step("step", f"Index {i} (value {a[i]}): {why}; longest so far {top}."))
        end = dp.index(best)
        chain = []
        k = end
        while k is not None:
            chain.append(k)
            k = parent[k]
        chain.reverse()
        steps.append(step("check", f"Following the choices back from index {end}: indices "
                                   f"{chain} hold {[a[k] for k in chain]}, strictly increasing, "
                                   f"length {len(chain)}."))
        steps.append(step("answer", str(best)))
        return steps


TASK = LIS()
