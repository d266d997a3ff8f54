"""Best time to buy and sell stock (unlimited transactions): the maximum total profit.

With any number of buy/sell pairs (never holding two shares at once), the optimum is the
sum of every positive day-to-day rise: each rise can be captured by buying the day before
and selling that day, and no strategy can earn more than all the rises together.
"""
from ._arrays import ArrayTask
from .base import step


class BuySellStock(ArrayTask):
    name = "buy_sell_stock"
    official = "BestTimeToBuyAndSellStock"
    min_value = 1
    noun = "price"
    index_noun = "day"
    caption = "Stock price per day"
    rules = ("You are given the price of a stock on consecutive days. You may buy and sell as "
             "many times as you like, but you can hold at most one share at a time (sell before "
             "you buy again), and a share bought on a day can be sold on a later day. What is "
             "the maximum total profit you can make? (If no trade makes money, the answer is 0.)")

    def solve(self, values):
        return sum(max(0, b - a) for a, b in zip(values, values[1:]))

    def skeleton(self, state):
        steps = [
            step("rule", "Unlimited transactions, one share at a time: the best profit is the "
                         "sum of every rise from one day to the next."),
            step("read", f"Prices by day: {state}."),
        ]
        total = 0
        for d in range(1, len(state)):
            a, b = state[d - 1], state[d]
            if b > a:
                total += b - a
                steps.append(step("step", f"Day {d - 1} -> day {d}: {a} -> {b}, a rise of "
                                          f"{b - a}; profit so far {total}."))
            else:
                steps.append(step("step", f"Day {d - 1} -> day {d}: {a} -> {b}, no rise; "
                                          f"profit stays {total}."))
        steps.append(step("check", f"Summing the rises again gives {self.solve(state)}, which "
                                   f"matches {total}."))
        steps.append(step("answer", str(total)))
        return steps


TASK = BuySellStock()
