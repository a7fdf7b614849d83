"""``bench.crowd`` runs end to end at a tiny size and prints its report; no timing is asserted."""

from __future__ import annotations

import re

from bench import crowd, crowd_report

NUMBER = re.compile(r"-?\d+(\.\d+)?")


def run(*argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = crowd.main(list(argv), out=lines.append)
    return code, lines


def fields_of(line: str) -> dict[str, str]:
    assert line.startswith("result "), line
    return dict(part.split("=", 1) for part in line.split()[1:])


def test_a_small_crowd_gets_a_result_line_with_figures_for_every_kind_of_event(tmp_path) -> None:
    code, lines = run("--sizes", "24,12", "--repeat", "2", "--timeout-per-size", "0",
                      "--database-url", f"sqlite:///{tmp_path / 'crowd.db'}")
    assert code == 0, "\n".join(lines)
    results = [fields_of(line) for line in lines if line.startswith("result ")]
    assert [r["size"] for r in results] == ["24", "12"]
    for r in results:
        assert r["backend"] == "sqlite" and r["status"] == "ok"
        assert r["loaded"] == r["size"]
        numeric = ["load_s", "last_batch_s", "last_batch_ms_per_event", "last_batch_statements",
                   "ratio_next_ms", "ratio_new_ms", "ratio_next_statements", "ratio_new_statements",
                   "crowd_learners", "largest_learner", "open_reviews"]
        for kind, _label in crowd_report.SCENARIOS:
            assert r[f"{kind}_n"] == "2"
            numeric += [f"{kind}_ms", f"{kind}_statements", f"{kind}_ksteps"]
        for name in numeric:
            assert NUMBER.fullmatch(r[name]), f"{name}={r[name]}"
        # Every single event runs SQL; the statement counter cannot read zero.
        assert all(int(r[f"{kind}_statements"]) > 0 for kind, _ in crowd_report.SCENARIOS)
    # The readable table has a row per kind of single event for each size.
    for _kind, label in crowd_report.SCENARIOS:
        assert sum(line.strip().startswith(label) for line in lines) == 2
    assert (tmp_path / "crowd-24.db").exists() and (tmp_path / "crowd-12.db").exists()


def test_a_size_that_overruns_its_bound_is_reported_not_waited_for(tmp_path) -> None:
    code, lines = run("--sizes", "20", "--repeat", "1", "--timeout-per-size", "0.01",
                      "--database-url", f"sqlite:///{tmp_path / 'crowd.db'}")
    assert code == 1
    (result,) = [fields_of(line) for line in lines if line.startswith("result ")]
    assert result["status"] == "timeout" and result["size"] == "20"
    assert any("DID NOT FINISH within" in line for line in lines)
