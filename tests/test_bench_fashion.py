"""The reference-table command (benchmarks/bench_fashion.py) end to end on tiny data, and its resume."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_fashion.py")
TINY = ["--data", "mnist5k", "--max-train", "200", "--max-test", "60", "--mps-bonds", "2", "--ttn-bonds", "2",
        "--hidden", "3", "--max-sweeps", "2", "--max-epochs", "2", "--rbm-lrs", "0.01", "--eval-ais", "8", "20",
        "--ais", "8", "50", "--n-gibbs", "5", "--threads", "1", "--sweep-caps", "ttn-D2=1"]


def run(out):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT, *TINY, "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=300, check=True).stdout


def test_reference_table_end_to_end_and_resume(tmp_path):
    first = run(tmp_path)
    names = ["mps-snake-D2", "ttn-D2", "rbm-dense-3", "rbm-local_2d-3"]
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert list(rows) == names
    for name, row in rows.items():
        assert row["n_fit"] == 180 and row["n_valid"] == 20 and row["n_test"] == 60
        assert 0 < row["test_nll"] < 784 and row["peak_mib"] > 0 and row["seconds"] > 0
        assert 1 <= row["epochs"] <= (1 if name == "ttn-D2" else 2) and row["candidates"][0]["history"]
    assert rows["ttn-D2"]["max_sweeps"] == 1 and rows["mps-snake-D2"]["max_sweeps"] == 2
    assert abs(rows["rbm-local_2d-3"]["n_params"] - rows["rbm-dense-3"]["n_params"]) <= 0.01 * rows["rbm-dense-3"]["n_params"]
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names) and "training" in first
    for f in ("table.csv", "table.json", "convergence.csv", "convergence.png"):
        assert (tmp_path / f).exists(), f
    again = run(tmp_path)
    assert again.count("done (cached)") == 4 and json.loads((tmp_path / "rows.json").read_text())["rows"] == rows
