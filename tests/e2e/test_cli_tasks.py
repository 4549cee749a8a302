"""More of the CLI: regression and multiclass end to end, bad files that change nothing, the
backup-and-restore drill, and the same flow on a real PostgreSQL store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from clikit import planta, planta_json
from sklearn.datasets import load_wine

from planta.services.demo import demo_data

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"




@pytest.fixture
def in_project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "plant"
    planta("init", str(root))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)


def test_regression_on_gas_turbine_nox(in_project: Path) -> None:
    if not (SHARED / "gas_turbine_co_nox").is_dir():
        pytest.skip(f"gas turbine data not found at {SHARED / 'gas_turbine_co_nox'}")
    frame = pd.read_csv(SHARED / "gas_turbine_co_nox" / "gt_2011.csv").iloc[:1500]
    frame.to_csv(in_project / "gt.csv", index=False)
    planta("usecase", "add", "nox", "--target", "NOX", "--task", "regression",
           "--objective", "rmse<=15", "--exclude", "CO")
    out = planta_json("ingest", "nox", "gt.csv")
    assert out["accepted"] == 1500
    trained = planta_json("train", "nox", "--budget", "4", code=None)
    assert trained["state"] in ("candidate", "rejected")
    assert trained["metrics"]["rmse"]["value"] < frame["NOX"].std()
    version = str(trained["version"])
    extra = ["--exception"] if trained["state"] == "rejected" else []
    planta("promote", "nox", version, "--reason", "test", *extra)
    frame.drop(columns=["NOX", "CO"]).iloc[:50].to_csv(in_project / "new.csv", index=False)
    scored = planta_json("score", "nox", "new.csv", "-o", "out.parquet")
    assert scored["ok"] == 50
    result = pd.read_parquet(in_project / "out.parquet")
    assert result["prediction"].between(frame["NOX"].min() * 0.5, frame["NOX"].max() * 1.5).all()


def test_multiclass_wine_excel_in_and_out(in_project: Path) -> None:
    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_excel(in_project / "wine.xlsx", index=False)
    planta("usecase", "add", "wine", "--target", "target", "--task", "multiclass",
           "--objective", "f1_macro>=0.6")
    planta_json("ingest", "wine", "wine.xlsx")
    trained = planta_json("train", "wine", "--budget", "3", code=None)
    assert trained["metrics"]["f1_macro"]["value"] > 0.8
    extra = ["--exception"] if trained["state"] == "rejected" else []
    planta("promote", "wine", str(trained["version"]), "--reason", "test", *extra)
    wine.drop(columns=["target"]).iloc[:20].to_excel(in_project / "new.xlsx", index=False)
    planta_json("score", "wine", "new.xlsx", "-o", "out.xlsx")
    result = pd.read_excel(in_project / "out.xlsx")
    assert set(result["prediction"]) <= {"barolo", "grignolino", "barbera"}
    assert (result["status"] == "ok").all()


def test_grouped_validation_by_entity(in_project: Path) -> None:
    raw = pd.read_csv(demo_data()).iloc[:2500]
    raw["machine"] = [f"M{i % 25:02d}" for i in range(len(raw))]
    raw.to_csv(in_project / "fleet.csv", index=False)
    planta("usecase", "add", "failure", "--target", "Machine failure", "--entity", "machine",
           "--objective", "recall>=0.3")
    planta_json("ingest", "failure", "fleet.csv")
    trained = planta_json("train", "failure", "--budget", "3", code=None)
    models = planta_json("models", "failure")
    cv = models[0]["summary"]["cv"]
    assert "by entity" in cv["scheme"] and "whole entities" in cv["holdout"]
    assert trained["version"] == 1


def test_bad_files_give_one_line_and_change_nothing(in_project: Path) -> None:
    planta("usecase", "add", "failure", "--target", "Machine failure")
    raw = pd.read_csv(demo_data()).iloc[:400]
    raw.to_csv(in_project / "good.csv", index=False)
    planta_json("ingest", "failure", "good.csv")
    before_events = len(planta_json("audit", "log", "--limit", "1000"))
    bad = {
        "empty.csv": "",
        "header.csv": ",".join(raw.columns) + "\n",
        "notarget.csv": raw.drop(columns=["Machine failure"]).to_csv(index=False),
        "oneclass.csv": raw.assign(**{"Machine failure": 0}).to_csv(index=False),
        "dupcols.csv": "a,a,Machine failure\n1,2,0\n3,4,1\n",
        "ragged.csv": raw.to_csv(index=False) + "1,2,3\n",
    }
    messages = {}
    for name, text in bad.items():
        (in_project / name).write_text(text)
        out = planta("ingest", "failure", name, code=1)
        assert name in out or "target" in out, out
        assert len(out.strip().splitlines()) <= 3, out
        messages[name] = out
    assert "only one value" in messages["oneclass.csv"]
    assert "line" in messages["ragged.csv"]
    assert "'a'" in messages["dupcols.csv"] or "a" in messages["dupcols.csv"]
    assert [d["version"] for d in planta_json("datasets", "failure")] == [1]
    assert len(planta_json("audit", "log", "--limit", "1000")) == before_events
    assert planta_json("audit", "verify")["ok"] is True


def test_text_in_a_numeric_column_is_quarantined_with_its_row(in_project: Path) -> None:
    planta("usecase", "add", "failure", "--target", "Machine failure")
    raw = pd.read_csv(demo_data()).iloc[:600].astype({"Torque [Nm]": object})
    raw.loc[213, "Torque [Nm]"] = "abc"
    raw.to_csv(in_project / "typo.csv", index=False)
    out = planta_json("ingest", "failure", "typo.csv")
    assert out["rejected"] == 1 and out["accepted"] == 599
    assert any("214" in f and "Torque" in f for f in out["report"]["findings"]), \
        out["report"]["findings"]


def test_backup_and_restore_drill(in_project: Path, tmp_path: Path) -> None:
    planta("usecase", "add", "failure", "--target", "Machine failure")
    pd.read_csv(demo_data()).iloc[:1500].to_csv(in_project / "h.csv", index=False)
    planta_json("ingest", "failure", "h.csv")
    trained = planta_json("train", "failure", "--budget", "3", code=None)
    planta("backup", str(tmp_path / "plant.tar.gz"))
    head = planta_json("audit", "verify")["head"]
    restored = tmp_path / "restored"
    restored.mkdir()
    os.chdir(restored)
    planta("restore", str(tmp_path / "plant.tar.gz"))
    assert (restored / "planta.toml").exists()
    models = planta_json("models", "failure")
    assert [m["version"] for m in models] == [trained["version"]]
    check = planta_json("audit", "verify", "--known-head", head)
    assert check["ok"] is True
    planta("promote", "failure", "1", "--reason", "after restore",
           *(["--exception"] if models[0]["state"] == "rejected" else []))


@pytest.mark.postgres
def test_lifecycle_on_postgresql(in_project: Path, postgres_url: str) -> None:
    env = {"PLANTA_STORE_URL": postgres_url}
    planta("usecase", "add", "failure", "--target", "Machine failure", env=env)
    pd.read_csv(demo_data()).iloc[:1500].to_csv(in_project / "h.csv", index=False)
    out = planta_json("ingest", "failure", "h.csv", env=env)
    assert out["dataset_version"] == 1
    trained = planta_json("train", "failure", "--budget", "3", code=None, env=env)
    extra = ["--exception"] if trained["state"] == "rejected" else []
    planta("promote", "failure", "1", "--reason", "pg", *extra, env=env)
    raw = pd.read_csv(demo_data()).iloc[5000:5100].drop(columns=["Machine failure"])
    raw.to_csv(in_project / "new.csv", index=False)
    scored = planta_json("score", "failure", "new.csv", "-o", "s.csv", env=env)
    assert scored["rows"] == 100
    assert planta_json("audit", "verify", env=env)["ok"] is True
    assert not (in_project / ".planta" / "planta.db").exists() or \
        planta_json("datasets", "failure") == []
