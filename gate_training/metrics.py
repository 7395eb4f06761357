"""Detection metrics over scores (higher = more unsafe): ROC AUC, recall at a false-alarm rate."""
import math


def roc_auc(pos, neg):
    """P(score of a random positive > score of a random negative), ties counting half."""
    pos, neg = sorted(pos), sorted(neg)
    if not pos or not neg:
        return float("nan")
    wins, j, k = 0.0, 0, 0
    for p in pos:
        while j < len(neg) and neg[j] < p:
            j += 1
        k = max(k, j)
        while k < len(neg) and neg[k] == p:
            k += 1
        wins += j + 0.5 * (k - j)
    return wins / (len(pos) * len(neg))


def cut_at_fa(neg, fa):
    """The lowest cut t with share(neg > t) <= fa: flag a score s when s > t."""
    if not neg:
        raise ValueError("no negatives to set a false-alarm rate on")
    ranked = sorted(neg, reverse=True)
    k = int(math.floor(fa * len(ranked) + 1e-9))
    return ranked[k] if k < len(ranked) else -math.inf


def share_above(values, cut):
    return sum(v > cut for v in values) / len(values) if values else float("nan")


def recall_at_fa(pos, neg, fa):
    return share_above(pos, cut_at_fa(neg, fa))


def roc_curve(pos, neg):
    """[(false-alarm rate, recall)] at every distinct cut (flag s >= cut), from (0, 0) to (1, 1)."""
    items = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg], reverse=True)
    pts, tp, fp, i = [(0.0, 0.0)], 0, 0, 0
    while i < len(items):
        s = items[i][0]
        while i < len(items) and items[i][0] == s:
            tp += items[i][1]
            fp += 1 - items[i][1]
            i += 1
        pts.append((fp / len(neg), tp / len(pos)))
    return pts


def wilson(k, n, z=1.96):
    """(share, low, high) of k in n, 95 % Wilson interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def wilson_text(flags):
    """'12.3% [8.1, 17.9] (k/n)' for a list of booleans."""
    k, n = sum(flags), len(flags)
    if n == 0:
        return "-"
    p, lo, hi = wilson(k, n)
    return f"{100 * p:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] ({k}/{n})"
