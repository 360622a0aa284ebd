#!/usr/bin/env python3
"""Summarises a `swift test` output file for a person reading CI: the output of the tests that
failed (each issue with its message and the lines that follow it), whatever else the tests wrote,
the slowest tests, and the run's closing line last.

Usage: test-summary.py OUTPUT-FILE [--slowest N]
"""
import re
import sys

STATUS = ("◇", "✔", "✘", "➜", "􀟈", "􀢄", "􁁛", "􀄣", "⚠")  # Swift Testing's line marks
BUILD = re.compile(
    r"^\[\d+/\d+\]|^Building for|^Build complete|^Compiling|^Write |^Linking |which are unhandled|/\.build/checkouts/"
)
TIMED = re.compile(r"^[✔✘] Test (.+?) (?:passed|failed) after ([0-9.]+) seconds")
ISSUE = re.compile(r"^✘ Test (.+?) recorded an issue")
FAILED = re.compile(r"^✘ Test (.+?) failed after")


def main() -> int:
    path = sys.argv[1]
    slowest = int(sys.argv[sys.argv.index("--slowest") + 1]) if "--slowest" in sys.argv else 10
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()

    failures: dict[str, list[str]] = {}
    other: list[str] = []
    times: list[tuple[float, str]] = []
    closing: list[str] = []
    current: list[str] | None = None  # the failure whose message lines follow
    for line in lines:
        if BUILD.search(line):
            continue
        if line.startswith(STATUS):
            current = None
            if line.startswith(("✔ Test run with", "✘ Test run with")):
                closing.append(line)
                continue
            timed = TIMED.match(line)
            if timed and not line.startswith(("✔ Suite", "✘ Suite")):
                times.append((float(timed.group(2)), timed.group(1)))
            issue = ISSUE.match(line)
            if issue:
                current = failures.setdefault(issue.group(1), [])
                current.append(line)
            elif FAILED.match(line):
                failures.setdefault(FAILED.match(line).group(1), []).append(line)
            elif line.startswith("✘"):
                other.append(line)
            continue
        if line.startswith("↳") or (current is not None and line.startswith((" ", "\t"))):
            if current is not None:
                current.append(line)
            continue
        if re.match(r"^\s*(Test Suite|Test Case|Executed \d+ tests)", line):
            if "Executed" in line:
                closing[:0] = [] if any("Executed" in row for row in closing) else [line.strip()]
            continue
        if line.strip():
            other.append(line)
            current = None

    if failures:
        print(f"== {len(failures)} failing test(s), with their issues")
        for name, block in failures.items():
            print(f"-- {name}")
            for row in block:
                print(row)
    if other:
        print("== other output of the tests")
        for row in other:
            print(row)
    if times:
        print(f"== the {min(slowest, len(times))} slowest tests (wall time, with the others running beside them)")
        for seconds, name in sorted(times, reverse=True)[:slowest]:
            print(f"{seconds:9.3f} s  {name}")
    for row in closing:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
