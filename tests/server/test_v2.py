"""The Open Inference Protocol (KServe V2) with an unmodified client: ``tritonclient[http]``
against a real `planta serve` process (one per module, nothing here changes the models)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from servers import GOOD_RECORD, Server
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    url = server.url.removeprefix("http://")
    assert url.startswith("127.0.0.1:")
    return triton.InferenceServerClient(url=url, connection_timeout=10, network_timeout=30)


@pytest.fixture(scope="module")
def metadata(client: triton.InferenceServerClient) -> dict[str, Any]:
    md: dict[str, Any] = client.get_model_metadata("failure")
    return md


def rows(n: int) -> list[dict[str, Any]]:
    """n good records that differ (torque and tool wear vary)."""
    return [GOOD_RECORD | {"torque_nm": 30.0 + 3 * i, "tool_wear_min": 20 + 25 * i,
                           "type": "LMH"[i % 3]} for i in range(n)]


def tensors(metadata: dict[str, Any], records: list[dict[str, Any]], *, binary: bool
            ) -> list[triton.InferInput]:
    """One InferInput per contract field, shape [n], typed as the metadata says."""
    out = []
    for spec in metadata["inputs"]:
        name, dtype = spec["name"], spec["datatype"]
        values = [r[name] for r in records]
        if dtype == "BYTES":
            array = np.array([str(v).encode() for v in values], dtype=np.object_)
        else:
            array = np.array(values, dtype=np.float64)
        tensor = triton.InferInput(name, [len(records)], dtype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        out.append(tensor)
    return out


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "planta" and "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("failure")
    assert client.is_model_ready("failure", "1")
    assert not client.is_model_ready("no-such-model")
    assert not client.is_model_ready("failure", "99")


def test_model_metadata_lists_every_field_with_its_datatype(
        server: Server, metadata: dict[str, Any]) -> None:
    with server.client() as c:
        fields = c.get("/v1/usecases/failure").json()["fields"]
    by_name = {i["name"]: i for i in metadata["inputs"]}
    assert set(by_name) == {f["name"] for f in fields}
    assert by_name["type"]["datatype"] == "BYTES"
    for f in fields:
        if f["kind"] in ("number", "integer"):
            assert by_name[f["name"]]["datatype"] == "FP64", f
        assert by_name[f["name"]]["shape"] == [-1]
    assert metadata["name"] == "failure" and "1" in metadata["versions"]
    outputs = {o["name"]: o["datatype"] for o in metadata["outputs"]}
    assert outputs == {"prediction": "BYTES", "probability": "FP64", "prediction_id": "BYTES"}


@pytest.mark.parametrize("binary", [False, True], ids=["json_tensors", "binary_tensors"])
def test_infer_matches_the_rest_api(client: triton.InferenceServerClient, server: Server,
                                    metadata: dict[str, Any], binary: bool) -> None:
    records = rows(4)
    wanted = [triton.InferRequestedOutput(name, binary_data=binary)
              for name in ("prediction", "probability", "prediction_id")]
    result = client.infer("failure", tensors(metadata, records, binary=binary),
                          outputs=wanted, request_id="v2-test-1")
    prediction = result.as_numpy("prediction")
    probability = result.as_numpy("probability")
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in result.as_numpy("prediction_id")]
    assert prediction.shape == probability.shape == (4,)
    assert len(set(ids)) == 4 and ids == sorted(ids)
    assert result.get_response()["model_version"] == "1"
    assert result.get_response()["id"] == "v2-test-1"
    with server.client() as c:
        rest = c.post("/v1/usecases/failure/predict", json={"records": records}).json()
        for i, answer in enumerate(rest["predictions"]):
            assert answer["probability"] == pytest.approx(float(probability[i]), abs=1e-12)
            got = prediction[i].decode() if isinstance(prediction[i], bytes) else prediction[i]
            assert str(answer["prediction"]) == str(got)
        logged = c.get(f"/v1/predictions/{ids[2]}").json()
    assert logged["channel"] == "v2" and logged["inputs"]["torque_nm"] == records[2]["torque_nm"]


def test_version_specific_infer(client: triton.InferenceServerClient, server: Server,
                                metadata: dict[str, Any]) -> None:
    inputs = tensors(metadata, rows(2), binary=False)
    result = client.infer("failure", inputs, model_version="1")
    assert result.get_response()["model_version"] == "1"
    assert client.get_model_metadata("failure", "1")["versions"] == ["1"]
    with server.client() as c:
        state = c.get("/v1/usecases/failure/versions/2").json()["state"]
    if state == "rejected":  # a rejected version is never served, pinned or not
        with pytest.raises(InferenceServerException, match="rejected"):
            client.infer("failure", inputs, model_version="2")
    else:
        assert client.infer("failure", inputs, model_version="2").get_response()[
            "model_version"] == "2"
    with pytest.raises(InferenceServerException) as info:
        client.infer("failure", inputs, model_version="999")
    assert info.value.status() == "404"


def test_unknown_model_raises(client: triton.InferenceServerClient,
                              metadata: dict[str, Any]) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.infer("no-such-model", tensors(metadata, rows(1), binary=False))
    assert info.value.status() == "404" and "no-such-model" in info.value.message()
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("no-such-model")


def test_a_contract_violation_is_a_422_naming_the_field(
        client: triton.InferenceServerClient, metadata: dict[str, Any]) -> None:
    records = rows(3)
    records[1]["torque_nm"] = 900.0
    with pytest.raises(InferenceServerException) as info:
        client.infer("failure", tensors(metadata, records, binary=True))
    assert info.value.status() == "422"
    assert "Torque" in info.value.message() and "Record 1" in info.value.message()


def _body(records: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    inputs = []
    for name in GOOD_RECORD:
        values = [r[name] for r in records]
        dtype = "BYTES" if name == "type" else "FP64"
        inputs.append({"name": name, "datatype": dtype, "shape": [len(values)],
                       "data": values} | overrides.get(name, {}))
    return {"inputs": inputs}


BAD_TENSORS = [
    pytest.param(_body(rows(2), torque_nm={"shape": [3]}), 400, id="shape_says_more"),
    pytest.param(_body(rows(2), torque_nm={"shape": [2, 2]}), 400, id="shape_two_columns"),
    pytest.param(_body(rows(2), torque_nm={"shape": [1, 1, 2]}), 400, id="shape_three_dims"),
    pytest.param(_body(rows(2), torque_nm={"shape": [-2]}), 400, id="shape_negative"),
    pytest.param(_body(rows(2), torque_nm={"shape": "2"}), 400, id="shape_not_a_list"),
    pytest.param(_body(rows(2), torque_nm={"shape": [1], "data": [40.0]}), 400,
                 id="rows_differ_between_inputs"),
    pytest.param(_body(rows(2), torque_nm={"data": [[40.0, 41.0], [42.0, 43.0]]}), 400,
                 id="nested_data_too_wide"),
    pytest.param(_body(rows(2), torque_nm={"data": "forty"}), 400, id="data_not_a_list"),
    pytest.param(_body(rows(2), torque_nm={"shape": [0], "data": []}), 400,
                 id="one_empty_input"),
    pytest.param({"inputs": []}, 400, id="no_inputs"),
    pytest.param({"inputs": [{"datatype": "FP64", "shape": [1], "data": [1]}]}, 400,
                 id="input_without_name"),
    pytest.param({"inputs": [{"name": n, "datatype": "FP64", "shape": [0], "data": []}
                             for n in GOOD_RECORD]}, 422, id="empty_batch"),
    pytest.param(_body(rows(2), torque_nm={"parameters": {"binary_data_size": 16}}), 400,
                 id="binary_size_without_binary_body"),
    pytest.param(_body(rows(1), torque_nm={"data": ["abc"]}), 422, id="text_in_a_number"),
    pytest.param(_body(rows(1)) | {"outputs": [{"name": "colour"}]}, 400,
                 id="unknown_output"),
    pytest.param(_body(rows(1)) | {"id": 7}, 400, id="id_not_text"),
]


@pytest.mark.parametrize(("body", "status"), BAD_TENSORS)
def test_bad_tensors_are_4xx_with_an_error_text(server: Server, body: dict[str, Any],
                                                status: int) -> None:
    with server.client() as c:
        r = c.post("/v2/models/failure/infer", json=body)
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"], doc


def test_bad_binary_requests(server: Server) -> None:
    header = json.dumps({"inputs": [{"name": "torque_nm", "datatype": "FP64", "shape": [2],
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    cases = [
        ({"Inference-Header-Content-Length": str(len(header) + 100)},
         header + struct.pack("<2d", 40.0, 41.0)),                     # header past the body
        ({"Inference-Header-Content-Length": "x"}, header),             # not a number
        ({"Inference-Header-Content-Length": str(len(header))},
         header + struct.pack("<d", 40.0)),                            # 8 bytes, not 16
        ({"Inference-Header-Content-Length": str(len(header))},
         header.replace(b"FP64", b"FP99") + struct.pack("<2d", 40.0, 41.0)),  # unknown type
        ({"Inference-Header-Content-Length": "4"}, header),             # cut mid-JSON
        ({"Content-Type": "text/plain"}, header),                       # no header length
    ]
    with server.client() as c:
        for headers, body in cases:
            r = c.post("/v2/models/failure/infer", content=body, headers=headers)
            assert 400 <= r.status_code < 500, (headers, r.status_code, r.text)
            assert isinstance(r.json()["error"], str), r.text
        bytes_input = json.dumps({"inputs": [{"name": "type", "datatype": "BYTES",
                                              "shape": [1],
                                              "parameters": {"binary_data_size": 9}}]}
                                 ).encode()
        r = c.post("/v2/models/failure/infer", content=bytes_input + struct.pack("<I", 50)
                   + b"LLLLL", headers={"Inference-Header-Content-Length":
                                        str(len(bytes_input))})
        assert r.status_code == 400 and "truncated" in r.json()["error"]
