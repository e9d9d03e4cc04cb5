"""The shipped Grafana provisioning and dashboards are valid and name metrics that exist."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gateway.ingest.metrics import IngestMetrics
from gateway.store.lineprotocol import GLUCOSE
from gateway.web.ops import OpsFigures, prometheus_text

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
REQUIRED_OPS = {
    "diatabase_messages_received_total",
    "diatabase_readings_stored_total",
    "diatabase_quarantined_total",
    "diatabase_lag_seconds_bucket",
    "diatabase_write_seconds_bucket",
    "diatabase_inflight_messages",
    "diatabase_mqtt_connected",
}


def _provisioned_uids() -> dict[str, str]:
    doc = yaml.safe_load((GRAFANA / "provisioning/datasources/diatabase.yaml").read_text())
    assert doc["apiVersion"] == 1
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def _known_metric_names() -> set[str]:
    """Sample names the ingester and ``diatabase serve`` actually expose."""
    m = IngestMetrics()
    m.quarantined.labels(reason="x").inc()
    names = {s.name for fam in m.registry.collect() for s in fam.samples}
    fig = OpsFigures(
        at=datetime.now(UTC),
        window_s=60,
        readings=0,
        messages=0,
        by_stored_time=True,
        lag_quantiles={0.5: 0.0},
        lag_max_s=0.0,
        quarantine={"x": 1},
        parked=0,
        open_alerts={"urgent": 1},
        hubs=(),
        mqtt=True,
    )
    web = {fam.name for fam in text_string_to_metric_families(prometheus_text(fig).decode())}
    # families without a sample in this figure set (labelled per hub) are declared all the same
    return names | web | {"diatabase_web_hub_online", "diatabase_web_hub_outbox_depth"}


def test_provisioning_files() -> None:
    assert _provisioned_uids() == {
        "diatabase-influxdb": "influxdb",
        "diatabase-prometheus": "prometheus",
    }
    doc = yaml.safe_load((GRAFANA / "provisioning/dashboards/diatabase.yaml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid(path: Path) -> None:
    dash = json.loads(path.read_text())
    uids = _provisioned_uids()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    known = _known_metric_names()
    for panel in dash["panels"]:
        assert panel["title"] and panel["targets"], panel
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        for target in panel["targets"]:
            ds = target["datasource"]
            assert uids.get(ds["uid"]) == ds["type"], f"{panel['title']}: unknown datasource"
            if ds["type"] == "prometheus":
                names = set(re.findall(r"diatabase_[a-z_]+", target["expr"]))
                assert names and names <= known, f"{panel['title']}: {names - known}"
            else:
                q = target["query"]
                assert f'r._measurement == "{GLUCOSE}"' in q and 'r._field == "mg_dl"' in q
                assert q.count("(") == q.count(")")


def test_dashboards_are_distinct_and_cover_the_ingester() -> None:
    assert {p.name for p in DASHBOARDS} == {"clinic.json", "ops.json"}
    assert len({json.loads(p.read_text())["uid"] for p in DASHBOARDS}) == len(DASHBOARDS)
    ops = json.loads((GRAFANA / "dashboards/ops.json").read_text())
    exprs = " ".join(t["expr"] for p in ops["panels"] for t in p["targets"])
    assert set(re.findall(r"diatabase_[a-z_]+", exprs)) >= REQUIRED_OPS
