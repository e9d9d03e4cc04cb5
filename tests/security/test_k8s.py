"""deploy/k8s/, checked statically (no cluster here; the manifests are not applied by this
repository): every manifest parses, every reference resolves, the ingester and web
commands are real `diatabase` commands with options they accept, the ingesters share one
group with client ids that are stable per pod ordinal, and the broker's queue limits do
not drop messages silently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.ingest.ingester import Ingester
from gateway.settings import IngestSettings
from tests.security.test_compose import is_group, resolve

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
FILES = sorted(K8S.glob("*.yaml"))
DOCS: list[dict[str, Any]] = [
    d
    for f in FILES
    if f.name != "kustomization.yaml"
    for d in yaml.safe_load_all(f.read_text())
    if d
]
_REF = re.compile(r"\$\((\w+)\)")


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCS if d["kind"] == kind}


WORKLOADS = {**objects("StatefulSet"), **objects("Deployment")}
SECRETS = objects("Secret")


def container(name: str) -> dict[str, Any]:
    (c,) = WORKLOADS[name]["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def expand(arg: str, env: dict[str, dict[str, Any]], pod: str) -> str:
    """Kubernetes' $(VAR) in command/args: a stand-in for each kind of source."""

    def value(m: re.Match[str]) -> str:
        e = env[m.group(1)]  # KeyError: a $(VAR) the container does not define
        if "value" in e:
            return str(e["value"])
        src = e["valueFrom"]
        if "fieldRef" in src:
            assert src["fieldRef"]["fieldPath"] == "metadata.name"
            return pod
        ref = src["secretKeyRef"]
        return f"x{ref['key'].lower()}"

    return _REF.sub(value, arg)


def test_every_manifest_parses_and_kustomization_lists_them() -> None:
    assert {d["kind"] for d in DOCS} >= {"StatefulSet", "Deployment", "Service", "Secret"}
    for d in DOCS:
        assert d.get("apiVersion") and d["metadata"].get("name"), d
    kustom = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustom["resources"])
    # the example Secrets are created out of band, never applied from the repository
    assert listed == {f.name for f in FILES} - {"kustomization.yaml", "secrets.example.yaml"}


def test_secrets_are_placeholders() -> None:
    for s in SECRETS.values():
        for key, value in s["stringData"].items():
            assert "CHANGE-ME" in value, f"{s['metadata']['name']}.{key} holds a value"


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_workload_selects_its_pods_is_probed_and_sized(name: str) -> None:
    w = WORKLOADS[name]
    labels = w["spec"]["template"]["metadata"]["labels"]
    assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = container(name)
    assert c["readinessProbe"] and c["livenessProbe"], name
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
    assert ":" in c["image"] and not c["image"].endswith(":latest"), name
    services = objects("Service")
    if w["kind"] == "StatefulSet":
        assert w["spec"]["serviceName"] in services, name
    # every Secret and ConfigMap it reads exists, with the keys it reads
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in SECRETS[ref["name"]]["stringData"], (name, ref)
    for v in w["spec"]["template"]["spec"].get("volumes", []):
        if "secret" in v:
            assert v["secret"]["secretName"] in SECRETS, (name, v)
        if "configMap" in v:
            assert v["configMap"]["name"] in objects("ConfigMap"), (name, v)


@pytest.mark.parametrize("name", ["ingester", "web"])
def test_command_is_a_real_diatabase_command(name: str) -> None:
    c = container(name)
    argv = [expand(a, env_of(c), f"{name}-0") for a in c["command"]]
    assert argv[0] == "diatabase"
    command, rest = resolve(argv[1:])
    assert not is_group(command)
    flags = {a.lstrip("-").replace("-", "_") for a in rest if a.startswith("--")}
    with command.make_context(argv[1], list(rest)) as ctx:
        given = {
            p.name
            for p in command.params
            if getattr(ctx.get_parameter_source(p.name), "name", "") == "COMMANDLINE"
        }
    assert given == flags


def _ingest_settings(pod: str) -> IngestSettings:
    c = container("ingester")
    env = env_of(c)
    argv = [expand(a, env, pod) for a in c["command"]]
    opts = {argv[i].lstrip("-").replace("-", "_"): argv[i + 1] for i in range(2, len(argv), 2)}
    # DIATABASE_* variables with a literal value are settings (a typo would be ignored
    # at run time by pydantic-settings' env source: fail here instead)
    for name, e in env.items():
        if name.startswith("DIATABASE_") and "value" in e:
            field = name.removeprefix("DIATABASE_").lower()
            assert field in IngestSettings.model_fields, name
            opts[field] = e["value"]
    # the registry URL comes from a Secret: a stand-in of the same form
    return IngestSettings(registry="postgresql://u:p@postgres:5432/registry", **opts)  # type: ignore[arg-type]


def test_ingesters_share_one_group_with_client_ids_stable_per_ordinal() -> None:
    sts = WORKLOADS["ingester"]
    assert sts["kind"] == "StatefulSet"  # stable pod names: ingester-0, ingester-1, ...
    env = env_of(container("ingester"))
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    n = sts["spec"]["replicas"]
    settings = [_ingest_settings(f"ingester-{i}") for i in range(n + 7)]  # room to scale
    ids = [s.client_id for s in settings]
    assert len(set(ids)) == len(ids)  # one id per ordinal...
    assert ids == [_ingest_settings(f"ingester-{i}").client_id for i in range(n + 7)]  # ...always
    assert all(i.startswith(f"ingester-{k}-") for k, i in enumerate(ids))
    assert {s.shared_group for s in settings} == {"ingest"}
    assert all(s.mqtt.tls and s.ca_file and s.cert_file for s in settings)
    # the metrics port the probes ask is the one the ingester serves
    c = container("ingester")
    port = {p["name"]: p["containerPort"] for p in c["ports"]}[
        c["readinessProbe"]["httpGet"]["port"]
    ]
    assert settings[0].metrics_port == port and c["readinessProbe"]["httpGet"]["path"] == "/metrics"


def test_ingester_disruption_budget_keeps_replicas_running() -> None:
    pdb = objects("PodDisruptionBudget")["ingester"]
    labels = WORKLOADS["ingester"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_broker_admits_the_ingesters_subscription_and_does_not_drop_silently() -> None:
    env = {k: v.get("value") for k, v in env_of(container("emqx")).items()}
    # a full EMQX message queue drops its oldest message: sized far beyond the default 1000
    assert int(env["EMQX_MQTT__MAX_MQUEUE_LEN"]) >= 1_000_000
    assert env["EMQX_MQTT__MQUEUE_STORE_QOS0"] == "false"
    # the broker's window is not below what an ingester asks for
    assert int(env["EMQX_MQTT__MAX_INFLIGHT"]) >= _ingest_settings("ingester-0").receive_maximum
    assert env["EMQX_LISTENERS__TCP__DEFAULT__ENABLE"] == "false"  # TLS only
    assert env["EMQX_MQTT__PEER_CERT_AS_USERNAME"] == "cn"
    headless = WORKLOADS["emqx"]["spec"]["serviceName"]
    assert objects("Service")[headless]["spec"]["clusterIP"] == "None"
    assert env["EMQX_CLUSTER__DNS__NAME"].startswith(f"{headless}.")
    assert f"$(POD_NAME).{headless}." in env["EMQX_NODE__NAME"]
    acl = objects("ConfigMap")["emqx-acl"]["data"]["acl.conf"]
    for topic in Ingester.default_topics("ingest"):
        assert f'"{topic}"' in acl, topic
    assert acl.rstrip().endswith("{deny, all}.")
