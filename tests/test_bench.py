"""The benchmark's harness runs end to end (small inputs, one repetition) and prints its table.

Only the shape of the report is checked here: the figures and the targets belong to the
benchmark itself (`python3 -m tests.bench`), not to a test that would fail on a slow machine.
"""

from __future__ import annotations

import re

from tests import bench

ROW = re.compile(r"^\| (?P<case>[^|]+) \| (?P<what>[^|]+) \| (?P<median>[0-9.]+) \| "
                 r"(?P<low>[0-9.]+)-(?P<high>[0-9.]+) \| (?P<ratio>[0-9.]+)x (?P<to>[^|]+) \| "
                 r"(?P<starts>[0-9-]+|-) \| (?P<uploaded>[0-9.]+) \| (?P<peak>[0-9]+|-) \|$")


def test_small_run_prints_every_row_and_target(tmp_path, capsys):
    output = tmp_path / "benchmark.md"

    code = bench.main(["--small", "--repeat", "1", "--gimp", "3.2", "--output", str(output)])

    printed = capsys.readouterr().out
    assert code == 0
    rows = [ROW.match(line) for line in printed.splitlines() if line.startswith("| ")]
    rows = [row for row in rows if row]
    labels = [case.label for case in bench.SMALL_CASES]
    assert [(row["case"], row["what"].split(" ")[0], row["to"].strip()) for row in rows] == [
        (labels[0], "baseline:", "curl"), (labels[0], "GIMP", "curl"),
        (labels[1], "GIMP", "GIMP 1 MP"), (labels[2], "GIMP", "GIMP 1 MP")]
    for row in rows:
        assert float(row["low"]) <= float(row["median"]) <= float(row["high"])
        assert float(row["uploaded"]) > 0
        if row["what"].startswith("baseline"):
            assert row["ratio"] == "1.00" and int(row["peak"]) > 0 and row["starts"] == "-"
        else:
            assert int(row["starts"].split("-")[-1]) >= 1  # the job, at least
    verdicts = re.findall(r"^- (PASS|FAIL): (.+)$", printed, re.MULTILINE)
    assert len(verdicts) == 4, printed  # curl ratio, large ratio, selection ratio, starts
    assert "- GIMP 3.2: 3.2." in printed
    written = output.read_text()
    assert written.startswith("# Benchmark") and printed.strip() in written
