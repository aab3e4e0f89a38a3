"""cluster.yaml (AWS) and cluster.local.yaml (machines you own) pass Ray's own cluster-config schema, after the
defaults `ray up` fills in; and they open nothing to the world but SSH."""

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _validated(cfg: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster.local.yaml"])
def test_cluster_configs_pass_rays_schema(name):
    cfg = yaml.safe_load((REPO / name).read_text())
    prepared = _validated(cfg)
    assert prepared["cluster_name"].startswith("mer-search")
    heads = [cmd for cmd in cfg["head_start_ray_commands"] if "ray start --head" in cmd]
    assert heads and all("--dashboard-host=127.0.0.1" in cmd for cmd in heads)   # the dashboard: the head only
    assert any("install.sh" in c for c in cfg["setup_commands"])
    text = (REPO / name).read_text().lower()
    assert "wandb_api_key" not in text and "aws_secret" not in text


def test_the_local_cluster_starts_every_node_with_token_auth():
    """Machines on a LAN: without Ray's token auth anyone reaching the head's ports runs code on every node."""
    cfg = yaml.safe_load((REPO / "cluster.local.yaml").read_text())
    starts = [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token ray start" in c for c in starts)
    assert any(k.endswith("/.ray/auth_token") for k in cfg["file_mounts"])
    assert any("RAY_AUTH_MODE=token" in c for c in cfg["setup_commands"])


def test_aws_cluster_shape_and_firewall():
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] == "head" and "GPU" not in types["head"]["resources"]
    gpu = types["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1 and gpu["node_config"]["InstanceType"].startswith("g")
    assert cfg["idle_timeout_minutes"] > 0
    rules = cfg["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])


@pytest.mark.parametrize("mistake", ["unknown key", "wrong type", "unknown firewall field"])
def test_the_schema_check_catches_mistakes(mistake):
    cfg = yaml.safe_load((REPO / "cluster.yaml").read_text())
    if mistake == "unknown key":
        cfg["max_wrokers"] = 3
    elif mistake == "wrong type":
        cfg["idle_timeout_minutes"] = "ten"
    else:
        cfg["provider"]["security_group"]["Ports"] = [22]
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        _validated(cfg)
