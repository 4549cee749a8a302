"""The thinnest path: a real `planta serve` answers a prediction and logs it."""

from __future__ import annotations

from servers import GOOD_RECORD


def test_predict_then_find_it_in_the_log(server) -> None:
    with server.client() as c:
        r = c.post("/v1/usecases/failure/predict", json={"records": [GOOD_RECORD]})
        assert r.status_code == 200, r.text
        answer = r.json()["predictions"][0]
        assert answer["model_version"] == 1 and 0 <= answer["probability"] <= 1
        logged = c.get(f"/v1/predictions/{answer['prediction_id']}")
        assert logged.status_code == 200, logged.text
        assert logged.json()["inputs"]["torque_nm"] == GOOD_RECORD["torque_nm"]
