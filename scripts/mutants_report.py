"""The score table and the list of surviving mutants of a `make mutants` run.

    python scripts/mutants_report.py [--docs]    # run from the repo root after scripts/mutants

Prints the per-module table (markdown). With --docs it also writes docs/mutation-survivors.md:
every mutant that survived or that no selected test executes, with its line and change,
grouped by module, each with the reason it survives (scripts/mutants_reasons.py; the ones no
rule explains are printed and marked UNEXPLAINED). The safety-relevant ones are discussed in
docs/testing.md ("Mutation testing").
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mutants_lines import changed_lines, source_path  # noqa: E402
from mutants_reasons import REASONS, reason_for  # noqa: E402

STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "log text",
    37: "mypy",
    36: "timeout",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not checked",
    -11: "crashed",
    -9: "crashed",
}
COLUMNS = [
    "total",
    "mypy",
    "log text",
    "killed",
    "timeout",
    "survived",
    "no tests",
    "crashed",
    "not checked",
]
DOC = Path("docs/mutation-survivors.md")


def load() -> dict[str, dict[str, str]]:
    """{module file: {mutant name: status}}"""
    caught = Path("mutants/mypy-caught.json")
    mypy = set(json.loads(caught.read_text(encoding="utf-8"))) if caught.exists() else set()
    out: dict[str, dict[str, str]] = {}
    for meta in sorted(Path("mutants/gateway/control").glob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data["exit_code_by_key"]
        out[meta.name.removesuffix(".meta")] = {
            name: "mypy" if code is None and name in mypy else STATUS.get(code, "crashed")
            for name, code in codes.items()
        }
    return out


def table(results: dict[str, dict[str, str]]) -> str:
    rows = [
        "| module | " + " | ".join(COLUMNS) + " | score (tests) | score (tests+mypy) |",
        "| --- |" + " ---: |" * (len(COLUMNS) + 2),
    ]
    grand: Counter[str] = Counter()
    for module, statuses in results.items():
        c = Counter(statuses.values())
        c["total"] = len(statuses)
        grand.update(c)
        rows.append(_row(module, c))
    rows.append(_row("**all**", grand))
    return "\n".join(rows)


def _row(name: str, c: Counter[str]) -> str:
    detected = c["killed"] + c["timeout"]
    tested = detected + c["survived"] + c["no tests"]
    tests = f"{100 * detected / tested:.1f} %" if tested else "–"
    both = f"{100 * (detected + c['mypy']) / (tested + c['mypy']):.1f} %" if tested else "–"
    return f"| {name} | " + " | ".join(str(c[k]) for k in COLUMNS) + f" | {tests} | {both} |"


def describe(name: str) -> tuple[str, str, str]:
    """(function, line, '-old / +new') of one mutant."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(name, path=source_path(name)).splitlines()
    old = [t[1:].strip() for t in diff if t.startswith("-") and not t.startswith("---")]
    new = [t[1:].strip() for t in diff if t.startswith("+") and not t.startswith("+++")]
    lines = changed_lines(name) or []
    function = name.partition("__mutmut_")[0].rpartition(".")[2].replace("ǁ", ".").lstrip("x_.")
    change = f"`{' '.join(old)}` → `{' '.join(new) or '(removed)'}`"
    return function, ",".join(map(str, lines)), change


def write_docs(results: dict[str, dict[str, str]], summary: str) -> None:
    out = [
        "# Surviving mutants of gateway/control/ (generated)",
        "",
        "Written by `scripts/mutants_report.py --docs` from the last `make mutants` run (its",
        "coverage: `not checked`; a run stopped for time leaves mutants unchecked);",
        "the reasons are in [testing.md](testing.md#mutation-testing-make-mutants-not-in-ci).",
        "`survived`: the tests that execute the line passed with the mutant; `no tests`: no",
        "selected test executes the line. Each has the reason it survives (rules in",
        "`scripts/mutants_reasons.py`; `UNEXPLAINED`: no rule yet).",
        "",
        summary,
        "",
    ]
    recheck_path = Path("mutants/recheck.json")
    recheck = json.loads(recheck_path.read_text()) if recheck_path.exists() else {}
    rows: list[tuple[str, str, str, str, str, str, str]] = []
    for module, statuses in results.items():
        for name, status in statuses.items():
            if status in ("survived", "no tests"):
                function, line, change = describe(name)
                found = reason_for(module, function, line, change)
                if recheck.get(name):  # killed by today's tests (scripts/mutants_recheck.py)
                    found = ("killed-since", f"recheck: `{recheck[name]}`")
                reason = "`UNEXPLAINED`" if found is None else f"`{found[0]}`"
                if found and found[1]:
                    reason += f" ({found[1]})"
                rows.append((module, name, status, function, line, change, reason))
    counts = Counter(r[6].split("`")[1] for r in rows)
    out += ["## Reasons", "", "| reason | survivors | kind | why |", "| --- | ---: | --- | --- |"]
    for key, (kind, why) in REASONS.items():
        if counts[key]:
            why = why.replace("|", "\\|")
            out.append(f"| `{key}` | {counts[key]} | {kind} | {why} |")
    if counts["UNEXPLAINED"]:
        out.append(f"| `UNEXPLAINED` | {counts['UNEXPLAINED']} | | no rule yet |")
    out.append("")
    print("survivors by reason:", dict(counts.most_common()))
    for module, statuses in results.items():
        left = sorted(
            (n for n, s in statuses.items() if s in ("survived", "no tests")),
            key=lambda n: (statuses[n], int(n.rpartition("_")[2])),
        )
        if not left:
            continue
        out += [
            f"## {module}",
            "",
            "| status | function | line | change | reason |",
            "| --- | --- | ---: | --- | --- |",
        ]
        by_name = {r[1]: r for r in rows}
        for name in left:
            _, _, status, function, line, change, reason = by_name[name]
            change = change.replace("|", "\\|")
            out.append(f"| {status} | `{function}` | {line} | {change} | {reason} |")
        out.append("")
    DOC.write_text("\n".join(out), encoding="utf-8")
    print(f"wrote {DOC}")


def main() -> None:
    results = load()
    summary = table(results)
    print(summary)
    if "--docs" in sys.argv:
        write_docs(results, summary)


if __name__ == "__main__":
    main()
