"""Log formats: flat CSV/Parquet and DSJSON round trips, VW compatibility, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from policies import create_policy
from simulator.config import WorldConfig
from simulator.logs import LogsError, read_logs, records_to_data, write_dsjson, write_flat
from simulator.replay import evaluate
from simulator.synthetic_logs import simulate_logs
from simulator.world import World

WORLD = WorldConfig(titles=2, artworks=3, tastes=4, viewers=200, seed=2)


def synthetic(n: int = 300):
    world = World.generate(WORLD)

    def logging(t: int):
        return create_policy("uniform", world.title_artworks(t), world.feature_names, seed=t)

    return world, simulate_logs(world, logging, n, seed=1).data


def records(n: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        out.append({
            "event_id": f"e{i}", "timestamp": f"2026-01-01T00:00:0{i}.000Z", "title_id": "t1",
            "variant": "main",
            "user_id": f"u{i}", "context": {"romance": 0.1 * i, "comedy": 1.0 - 0.1 * i},
            "artworks": ["a", "b", "c"], "probabilities": [0.5, 0.25, 0.25], "artwork_id": "abc"[i % 3],
            "propensity": [0.5, 0.25, 0.25][i % 3], "model_version": 3, "reward": float(i % 2),
        })  # fmt: skip
    return out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_flat_round_trip(tmp_path: Path, suffix: str) -> None:
    _, data = synthetic()
    back = read_logs(write_flat(data, tmp_path / f"logs{suffix}"))
    assert back.features == data.features and back.artworks == data.artworks
    np.testing.assert_allclose(back.contexts, data.contexts)
    np.testing.assert_array_equal(back.artwork, data.artwork)
    np.testing.assert_array_equal(back.title, data.title)
    np.testing.assert_allclose(back.propensity, data.propensity)
    assert back.probabilities is not None and data.probabilities is not None
    np.testing.assert_allclose(back.probabilities, data.probabilities)


def test_dsjson_round_trip_and_vw_reads_it(tmp_path: Path) -> None:
    import vowpal_wabbit_next as vw

    recs = records()
    path = tmp_path / "logs.dsjson"
    assert write_dsjson(recs, path) == 5
    data = read_logs(path)
    expected = records_to_data(recs)
    np.testing.assert_array_equal(data.artwork, expected.artwork)
    np.testing.assert_allclose(data.reward, expected.reward)
    np.testing.assert_allclose(data.propensity, expected.propensity)
    np.testing.assert_allclose(data.contexts, expected.contexts)
    assert data.probabilities is not None and expected.probabilities is not None
    np.testing.assert_allclose(data.probabilities, expected.probabilities)
    assert data.title.tolist() == ["t1"] * 5
    parser = vw.DSJsonFormatParser(vw.Workspace(["--cb_explore_adf", "--quiet"]))
    for line in path.read_text().splitlines():
        examples = parser.parse_json(line)
        assert len(examples) == 1 + 3  # shared context + one example per artwork


def test_dsjson_lines_without_outcome_are_skipped(tmp_path: Path) -> None:
    recs = records(3)
    recs[1]["reward"] = None
    path = tmp_path / "logs.jsonl"
    write_dsjson(recs, path)
    assert '"_skipLearn":true' in path.read_text().splitlines()[1]
    assert len(read_logs(path)) == 2


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "logs.csv"
    path.write_text(text)
    return path


HEADER = "title_id,context.romance,artwork_id,reward,propensity\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        (HEADER, "no rows"),
        ("title_id,context.romance,artwork_id,reward\nt,0.1,a,1\n", "column 'propensity' is missing"),
        ("title_id,artwork_id,reward,propensity\nt,a,1,0.5\n", "no context columns"),
        (HEADER + "t,0.1,a,1,0.5\nt,0.2,b,0,0\n", "row 2, column 'propensity': must be in (0, 1], got 0.0"),
        (HEADER + "t,0.1,a,1,0.5\nt,oops,b,0,0.5\n",
         "row 2, column 'context.romance': must be a finite number, got 'oops'"),
        (HEADER + "t,0.1,a,yes,0.5\n", "row 1, column 'reward': must be a finite number, got 'yes'"),
        (HEADER + "t,0.1,,1,0.5\n", "row 1, column 'artwork_id': missing value"),
        (HEADER + 't,0.1,a,1,0.5\n"t,0.2\n', "cannot be read as CSV"),
    ],
)  # fmt: skip
def test_flat_refusals_name_row_and_column(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(LogsError) as info:
        read_logs(_csv(tmp_path, text))
    assert fragment in str(info.value)


def test_probability_columns_must_agree_with_the_propensity(tmp_path: Path) -> None:
    text = "context.x,artwork_id,reward,propensity,prob.a,prob.b\n0.1,a,1,0.5,0.5,0.5\n0.2,b,0,0.5,0.6,0.4\n"
    with pytest.raises(LogsError, match="row 2, column 'prob.b': the shown artwork's probability 0.4"):
        read_logs(_csv(tmp_path, text))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"_label_cost": 0, "a": [1], "c": {"_multi": [{}]}, "p": [1.0]}',
         "line 2: field '_label_probability' is missing"),
        ('{"_label_cost": 0, "_label_probability": 0, "a": [1], "c": {"_multi": [{}]}, "p": [1.0]}',
         "line 2: field '_label_probability' must be in (0, 1]"),
        ('{"_label_cost": 0, "_label_probability": 1, "a": [1, 1], "c": {"_multi": [{}, {}]}, "p": [1.0, 0]}',
         "line 2: field 'a' must list each"),
    ],
)  # fmt: skip
def test_dsjson_refusals_name_the_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "logs.dsjson"
    write_dsjson(records(1), path)
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(LogsError) as info:
        read_logs(path)
    assert fragment in str(info.value)


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LogsError, match="unknown log format '.txt'"):
        read_logs(tmp_path / "logs.txt")
    with pytest.raises(LogsError, match="no such file"):
        read_logs(tmp_path / "nope.csv")


def test_candidate_needing_unlogged_artworks_is_refused() -> None:
    world, data = synthetic()
    title = data.titles()[0]
    with pytest.raises(LogsError, match="needs artwork\\(s\\) the logs never show \\(poster-9\\)"):
        evaluate(data, "linucb", arms=[*data.title_artworks(title), "poster-9"])
    with pytest.raises(
        LogsError, match="cannot build candidate 'fixed' on the logged artworks: arm 'poster-9'"
    ):
        evaluate(data, "fixed", {"arm": "poster-9"})


def test_replay_of_a_learning_candidate_runs_on_several_titles() -> None:
    _, data = synthetic(600)
    result = evaluate(data, "linucb", {"alpha": 1.0}, block=50)
    names = [e.estimator for e in result.estimates]
    assert names == ["replay", "ips", "snips", "dr"]
    for e in result.estimates:
        assert e.low <= e.value <= e.high and 0 < e.ess <= 600
    assert "replay" in result.table() and "95% interval" in result.table()
    assert json.dumps([e.as_row() for e in result.estimates])
