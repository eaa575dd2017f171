"""The schema registry API of `twin serve` (docs/schema-registry.md) through
a third-party client, confluent-kafka's SchemaRegistryClient, and through
plain HTTP for the error bodies: registering, fetching by id, subjects and
versions, lookup, compatibility levels and checks, soft and permanent
deletes. On SQLite by default; on PostgreSQL with TWIN_TEST_DB (ctest's
cli.api_sr_pg)."""
import json
import os

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from conftest import Server, q

CT = "application/vnd.schemaregistry.v1+json"

PLANT = {
    "type": "object",
    "properties": {"temp": {"type": "number", "unit": "degC"},
                   "flow": {"type": "number"}},
    "required": ["temp"],
}


def js(doc):
    return Schema(json.dumps(doc), schema_type="JSON")


@pytest.fixture
def sr(tmp_path):
    s = Server(tmp_path, os.environ.get("TWIN_TEST_DB") or None)
    # A shared database: start from no subjects and the default level.
    st, subjects = s.api("GET", "/subjects?deleted=true")
    assert st == 200, subjects
    for sub in subjects:
        s.api("DELETE", f"/subjects/{q(sub)}")
        st, body = s.api("DELETE", f"/subjects/{q(sub)}?permanent=true")
        assert st == 200, body
    s.api("PUT", "/config", {"compatibility": "BACKWARD"}, CT)
    yield s
    if s.p.poll() is None:
        s.stop()


def client(s):
    return SchemaRegistryClient({"url": s.url})


def test_register_fetch_list(sr):
    c = client(sr)
    sid = c.register_schema("plant-value", js(PLANT))
    assert sid >= 1
    # The same schema, reordered: the same id; in another subject too.
    reordered = {"required": ["temp"], "type": "object",
                 "properties": {"flow": {"type": "number"},
                                "temp": {"unit": "degC", "type": "number"}}}
    c2 = client(sr)  # no client-side cache
    assert c2.register_schema("plant-value", js(reordered)) == sid
    assert c2.register_schema("other-value", js(PLANT)) == sid

    got = client(sr).get_schema(sid)
    assert got.schema_type == "JSON"
    assert json.loads(got.schema_str) == PLANT

    assert sorted(c.get_subjects()) == ["other-value", "plant-value"]
    assert c.get_versions("plant-value") == [1]

    v2 = dict(PLANT, properties=dict(PLANT["properties"],
                                     note={"type": "string"}))
    sid2 = c.register_schema("plant-value", js(v2))
    assert sid2 != sid
    assert c.get_versions("plant-value") == [1, 2]
    latest = c.get_latest_version("plant-value")
    assert (latest.schema_id, latest.version, latest.subject) == \
        (sid2, 2, "plant-value")
    assert json.loads(latest.schema.schema_str) == v2
    first = c.get_version("plant-value", 1)
    assert first.schema_id == sid

    found = c.lookup_schema("plant-value", js(reordered))
    assert (found.schema_id, found.version) == (sid, 1)

    st, uses = sr.api("GET", f"/schemas/ids/{sid}/versions")
    assert st == 200
    assert uses == [{"subject": "other-value", "version": 1},
                    {"subject": "plant-value", "version": 1}]
    st, types = sr.api("GET", "/schemas/types")
    assert (st, types) == (200, ["JSON"])


def test_compatibility(sr):
    c = client(sr)
    c.register_schema("plant-value", js(PLANT))
    assert c.get_compatibility() == "BACKWARD"

    added_required = dict(PLANT, required=["temp", "flow"])
    narrowed = dict(PLANT, properties=dict(PLANT["properties"],
                                           flow={"type": "integer"}))
    widened = dict(PLANT, properties=dict(
        PLANT["properties"], flow={"type": ["number", "string"]}))
    assert c.test_compatibility("plant-value", js(added_required)) is False
    assert c.test_compatibility("plant-value", js(narrowed)) is False
    assert c.test_compatibility("plant-value", js(widened)) is True

    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("plant-value", js(added_required))
    assert e.value.http_status_code == 409
    assert e.value.error_code == 409
    assert "required property 'flow' added" in e.value.error_message

    # NONE on the subject lets it through; the global level is unchanged.
    c.set_compatibility("plant-value", "NONE")
    assert c.get_compatibility("plant-value") == "NONE"
    assert c.get_compatibility() == "BACKWARD"
    assert c.register_schema("plant-value", js(added_required)) >= 1
    assert c.get_versions("plant-value") == [1, 2]

    # FORWARD: the old schema must read what the new one writes.
    c.set_compatibility("plant-value", "FORWARD")
    optional_gone = dict(added_required, properties={"temp": {
        "type": "number", "unit": "degC"}}, additionalProperties=False)
    assert c.test_compatibility("plant-value", js(optional_gone)) is True

    with pytest.raises(SchemaRegistryError) as e:
        c.set_compatibility("plant-value", "SOMETIMES")
    assert e.value.error_code == 42203


def test_errors(sr):
    c = client(sr)
    with pytest.raises(SchemaRegistryError) as e:
        c.get_schema(987654)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as e:
        c.get_versions("nobody")
    assert e.value.error_code == 40401
    assert e.value.error_message == "Subject 'nobody' not found."
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("avro-value", Schema('"string"', schema_type="AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("p", Schema("{}", schema_type="PROTOBUF"))
    assert e.value.error_code == 42201
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("bad", Schema("{not json", schema_type="JSON"))
    assert e.value.error_code == 42201

    sid = c.register_schema("plant-value", js(PLANT))
    with pytest.raises(SchemaRegistryError) as e:
        c.get_version("plant-value", 7)
    assert e.value.error_code == 40402
    with pytest.raises(SchemaRegistryError) as e:
        c.lookup_schema("plant-value", js({"type": "string"}))
    assert e.value.error_code == 40403

    # Plain HTTP: the error body, the media types, a bad version.
    st, hdrs, body = sr.req("GET", "/subjects/plant-value/versions/x")
    assert st == 422
    assert hdrs["content-type"] == CT
    assert json.loads(body)["error_code"] == 42202
    body = json.dumps({"schema": json.dumps(PLANT), "schemaType": "JSON"})
    st, out = sr.api("POST", "/subjects/plant-value/versions", body.encode(),
                     "application/json")
    assert (st, out) == (200, {"id": sid})
    st, out = sr.api("POST", "/subjects/plant-value/versions", body.encode(),
                     "text/plain")
    assert st == 415


def test_delete(sr):
    c = client(sr)
    sid = c.register_schema("plant-value", js(PLANT))
    v2 = dict(PLANT, properties=dict(PLANT["properties"],
                                     note={"type": "string"}))
    c.register_schema("plant-value", js(v2))

    # Permanent before soft is refused.
    with pytest.raises(SchemaRegistryError) as e:
        c.delete_version("plant-value", 1, permanent=True)
    assert e.value.error_code == 40407
    assert c.delete_version("plant-value", 1) == 1
    assert c.get_versions("plant-value") == [2]
    st, out = sr.api("GET", "/subjects/plant-value/versions?deleted=true")
    assert (st, out) == (200, [1, 2])
    assert c.delete_version("plant-value", 1, permanent=True) == 1
    st, out = sr.api("GET", "/subjects/plant-value/versions?deleted=true")
    assert (st, out) == (200, [2])

    with pytest.raises(SchemaRegistryError) as e:
        c.delete_subject("plant-value", permanent=True)
    assert e.value.error_code == 40405
    assert c.delete_subject("plant-value") == [2]
    assert c.get_subjects() == []
    st, out = sr.api("GET", "/subjects?deleted=true")
    assert (st, out) == (200, ["plant-value"])
    assert c.delete_subject("plant-value", permanent=True) == [2]
    st, out = sr.api("GET", "/subjects?deleted=true")
    assert (st, out) == (200, [])

    # The id stays valid: ids never change meaning.
    got = client(sr).get_schema(sid)
    assert json.loads(got.schema_str) == PLANT
    # A new registration starts the subject again.
    assert c.register_schema("plant-value", js(PLANT)) == sid
    assert c.get_versions("plant-value") == [1]


def test_survives_restart(sr, tmp_path):
    """The registry is in the metadata store: a restarted server (same data
    directory or database) answers the same ids."""
    c = client(sr)
    sid = c.register_schema("plant-value", js(PLANT))
    assert sr.stop() == 0
    s2 = Server.__new__(Server)
    Server.__init__(s2, tmp_path, os.environ.get("TWIN_TEST_DB") or None)
    try:
        got = client(s2).get_schema(sid)
        assert json.loads(got.schema_str) == PLANT
        assert client(s2).get_versions("plant-value") == [1]
    finally:
        s2.stop()
