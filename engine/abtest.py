"""A/B tests: who gets which variant, and the statistical rule that picks the winner.

**Assignment.** A recipient's place is a pure function of the campaign and the customer: a SHA-256
of both, read as a number in [0, 1). Below ``testPercent`` / 100 the recipient is in the test group,
which is split evenly into the variants by the same number (so each variant gets a share of
``testPercent / variants``, up to sampling noise); the rest wait for the winner. Seeded by the
campaign, reproducible, and independent of the order or batches in which the audience is read: a
re-plan after a crash puts everyone where they were.

**The rule.** For each variant, from its recipients handed off in the test: opens and clicks are
rates (unique human opens or clicks per recipient), with a Beta(1 + successes, 1 + failures)
posterior; revenue per recipient is a mean, with a normal posterior (its standard error from the
recipients' attributed revenue, zeros included). The probability that each variant is the best is
estimated from ``DRAWS`` seeded draws of those posteriors. The rule is met when every variant has at
least ``AB_MIN_SAMPLE`` recipients and one variant's probability to be best is at least
``AB_CONFIDENCE``: that variant wins. When it is not met by the deadline, the campaign's
``fallback`` decides: ``leader`` (the variant with the best estimate now), ``first`` (variant A) or
``manual`` (keep waiting for ``POST /decide``).

Intervals in reports: Wilson score intervals for rates, mean ± 1.96 standard errors for revenue.
"""
import hashlib
import math
import random

METRICS = ("opens", "clicks", "revenue")
FALLBACKS = ("leader", "first", "manual")
DRAWS = 10_000
Z95 = 1.959964
LETTERS = "ABCDE"


def position(campaign_id, customer_id):
    """The customer's number in [0, 1) for this campaign."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def variant_of(campaign_id, customer_id, test_percent, variants):
    """The variant index of a test-group member, or None for one who waits for the winner."""
    share = test_percent / 100
    at = position(campaign_id, customer_id)
    return min(variants - 1, int(at / share * variants)) if at < share else None


def arms(rows, metric):
    """The rule's arms from per-variant figures (``engine.reports.by_variant``): recipients handed
    off, unique human opens or clicks, and the attributed revenue with its sum of squares."""
    return [{"n": row["handed_off"], "successes": row[metric]["unique_human"] if metric != "revenue" else 0,
             "sum": row["revenue"], "sumsq": row["revenue_sumsq"]} for row in rows]


def wilson(successes, n):
    """The 95% Wilson score interval of a rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean_and_error(arm):
    n = arm["n"]
    if n == 0:
        return 0.0, float("inf")
    mean = arm["sum"] / n
    if n < 2:
        return mean, float("inf")
    variance = max(0.0, (arm["sumsq"] - n * mean * mean) / (n - 1))
    return mean, math.sqrt(variance / n) if variance else 1e-9


def estimate(arm, metric):
    """``(value, low, high)``: the variant's rate or revenue per recipient with its 95% interval."""
    if metric == "revenue":
        mean, error = _mean_and_error(arm)
        if math.isinf(error):
            return mean, None, None
        return mean, max(0.0, mean - Z95 * error), mean + Z95 * error
    n = arm["n"]
    low, high = wilson(arm["successes"], n)
    return (arm["successes"] / n if n else 0.0), low, high


def probabilities(arms, metric, seed):
    """Each variant's probability to be the best (seeded Monte Carlo over the posteriors)."""
    rng = random.Random(seed)
    wins = [0] * len(arms)
    if metric == "revenue":
        params = [_mean_and_error(arm) for arm in arms]
        if any(math.isinf(error) for _, error in params):
            return [1 / len(arms)] * len(arms)

        def draw(index):
            mean, error = params[index]
            return rng.gauss(mean, error)
    else:
        params = [(1 + arm["successes"], 1 + arm["n"] - arm["successes"]) for arm in arms]

        def draw(index):
            return rng.betavariate(*params[index])
    for _ in range(DRAWS):
        values = [draw(i) for i in range(len(arms))]
        wins[values.index(max(values))] += 1
    return [w / DRAWS for w in wins]


def leader(arms, metric):
    """The variant with the best estimate now (posterior mean for rates); ties go to the earlier one."""
    def score(index):
        arm = arms[index]
        if metric == "revenue":
            return arm["sum"] / arm["n"] if arm["n"] else 0.0
        return (1 + arm["successes"]) / (2 + arm["n"])
    return max(range(len(arms)), key=lambda i: (score(i), -i))


def evaluate(arms, metric, min_sample, confidence, seed):
    """``{probabilities, leader, met, winner}``: ``winner`` is set only when the rule is met."""
    chances = probabilities(arms, metric, seed)
    best = max(range(len(arms)), key=lambda i: (chances[i], -i))
    met = all(arm["n"] >= min_sample for arm in arms) and chances[best] >= confidence
    return {"probabilities": chances, "leader": leader(arms, metric), "met": met, "winner": best if met else None}
