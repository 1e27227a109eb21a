"""cluster.yaml against Ray's autoscaler schema, and a sweep over a two-node Ray cluster."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.cluster_utils import Cluster

from latent_sweep import cli
from latent_sweep.spec import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster_raw() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_passes_the_autoscaler_schema(cluster_raw):
    validate_config(prepare_config(copy.deepcopy(cluster_raw)))
    types = cluster_raw["available_node_types"]
    assert types[cluster_raw["head_node_type"]]["resources"] == {"CPU": 0}  # the driver only
    assert types["gpu_worker"]["node_config"]["InstanceType"].startswith("g")
    setup = " && ".join(cluster_raw["setup_commands"])
    assert "cd ~/latent-sweep && python -m pip install -e ." in setup
    assert cluster_raw["file_mounts"] == {"~/latent-sweep": "."}
    assert f"ray[default,tune]=={ray.__version__}" in setup  # nodes run the driver's Ray


def test_cluster_yaml_typo_is_rejected(cluster_raw):
    import jsonschema

    broken = copy.deepcopy(cluster_raw)
    broken["available_node_types"]["gpu_worker"]["max_worker"] = 8
    with pytest.raises(jsonschema.ValidationError, match="'max_worker' was unexpected"):
        validate_config(prepare_config(broken))


@pytest.fixture
def two_nodes():
    """A head node with no CPUs (the driver only, as in cluster.yaml) and a worker node with
    two, on this machine, told apart by their IP: every trial must run on the worker."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.2")
    yield cluster
    cluster.shutdown()


@pytest.mark.slow
def test_sweep_runs_on_a_worker_node_and_collects_histories(two_nodes, tmp_path):
    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "quick.yaml"))
    raw.update(name="nodes", steps=200, eval_every=100, checkpoint_every=100)
    raw["sweep"] = {
        "metric": "hue_corr",
        "mode": "max",
        "search": "grid",
        "space": {"labels.mode": {"grid": ["soft", "hard"]}},
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    # A URI: trials upload their directories through Ray instead of writing to a shared disk.
    storage = f"file://{tmp_path / 'res'}"
    assert cli.main(["run", str(path), "--storage", storage, "--address", two_nodes.address]) == 0

    results = tmp_path / "res" / "nodes"
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    # Scores come from each trial's evals/ as uploaded to storage, read back through the URI.
    assert trials["member"].tolist() == [0, 0] and trials["hue_corr"].notna().all()
    nodes = set()
    for trial_dir in trials["trial_dir"]:
        assert any((results / trial_dir / "history").glob("part-*.parquet"))
        assert any((results / trial_dir / "evals").glob("part-*.parquet"))
        last = json.loads((results / trial_dir / "result.json").read_text().splitlines()[-1])
        nodes.add(last["node_ip"])
    # Which of several free nodes a trial lands on is Ray's choice (and a race when trials are
    # short), so the nodes are arranged to leave one answer: the worker's.
    assert nodes == {"127.0.0.2"}
