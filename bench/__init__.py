"""Benchmarks (see bench/__main__.py)."""
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
TABLE_HEAD = ["| measure | CRM | baseline (same run) | baseline figure | ratio | goal |", "|---|---|---|---|---|---|"]


def table_row(row, verdict=""):
    """One row of a results table."""
    return (f"| {row['measure']} | {row['crm']} | {row['baseline']} | {row['base']} | {row['ratio']:.2f} | "
            f"{row['goal']}{verdict} |")


def replace_section(name, start, end, lines):
    """Write ``lines`` between the markers ``start`` and ``end`` of ``bench/RESULTS.md``, replacing what
    a previous run wrote there (the rest of the file is left as it is)."""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else "# Benchmark results\n"
    if start in text:
        text = text[:text.index(start)] + text[text.index(end) + len(end):].lstrip("\n")
    with open(RESULTS, "w") as out:
        out.write(text.rstrip("\n") + "\n\n" + "\n".join([start, *lines, "", end, ""]))
    print(f"wrote the {name} section of {RESULTS}")


def print_growth(rows, seconds, count):
    """Print how the cost per item grew from the first row to the last (1.0 = linear)."""
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last[seconds] / last[count]) / (first[seconds] / first[count])
        print(f"cost per customer at {last['n']:,} / at {first['n']:,}: {growth:.2f} (1.0 = linear)")
