"""Shards: which instance polls which company, computed as any Kafka client would."""

from __future__ import annotations

import ctypes

import pytest
from aiokafka.partitioner import murmur2

from streamer.shards import companies_by_shard, shard_of

#: Apache Kafka's own murmur2 test vectors (clients UtilsTest), as signed Java ints.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize(("text", "java"), sorted(JAVA_MURMUR2.items()))
def test_shard_is_javas_positive_murmur2_mod_shards(text: str, java: int) -> None:
    """shard_of = Utils.toPositive(Utils.murmur2(utf8)) % shards, as Java computes it."""
    assert ctypes.c_int32(murmur2(text.encode())).value == java
    for shards in (1, 7, 32, 1000):
        assert shard_of(text, shards) == (java & 0x7FFFFFFF) % shards


def test_companies_spread_over_shards_and_keep_their_order() -> None:
    """Every company lands in exactly one shard; a shard keeps the configured order."""
    handles = [f"c|{1000 + i}" for i in range(200)]
    by_shard = companies_by_shard(handles, 32)
    flat = [h for shard in sorted(by_shard) for h in by_shard[shard]]
    assert sorted(flat) == sorted(handles)
    assert len(by_shard) > 16  # murmur2 spreads 200 handles over most of 32 shards
    for shard, members in by_shard.items():
        assert members == [h for h in handles if shard_of(h, 32) == shard]


def test_one_shard_holds_everything() -> None:
    """With a single shard every company is in shard 0."""
    assert companies_by_shard(["c|1", "c|2"], 1) == {0: ["c|1", "c|2"]}


def test_kubernetes_manifest_uses_the_pod_name_as_static_member_id() -> None:
    """deploy/kubernetes.yaml parses; the static member id comes from the pod name."""
    from pathlib import Path

    import yaml

    path = Path(__file__).parents[1] / "deploy" / "kubernetes.yaml"
    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "StatefulSet")
    container = doc["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMER_KAFKA__GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"] == {
        "fieldPath": "metadata.name"
    }
    assert container["args"][0] == "run"
