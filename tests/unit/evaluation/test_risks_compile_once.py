"""Each training job evaluates in a fresh process: anonymeter's compiled neighbour
search must come from numba's disk cache there, not be compiled again (5.5 s a job)."""

import json
import os
import subprocess
import sys

ATTACK = """
import json, sys
import pandas as pd
from evaluation.risks import attack_risks
train, holdout, synthetic = (pd.read_parquet(p) for p in sys.argv[1:4])
kinds = {c: "numerical" if c in ("wage", "education", "experience") else "categorical"
         for c in train.columns}
risks = attack_risks(train, holdout, synthetic, kinds, n_attacks=100)
from anonymeter.neighbors import mixed_types_kneighbors
stats = mixed_types_kneighbors._nearest_neighbors.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()),
                  "risks": [r.name for r in risks]}))
"""


def test_a_second_process_loads_the_neighbour_search_from_the_cache(cps_three, tmp_path):
    paths = []
    for name, frame in zip(("train", "holdout", "synthetic"), cps_three, strict=True):
        paths.append(tmp_path / f"{name}.parquet")
        frame.iloc[:1_000].to_parquet(paths[-1])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", ATTACK, *map(str, paths)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["misses"] > 0 and "linkability" in first["risks"]
    assert second["misses"] == 0 and second["hits"] > 0, runs
    assert second["risks"] == first["risks"]
