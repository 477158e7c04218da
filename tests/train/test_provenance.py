"""provenance.json, and `calf train --resume` on a finished run made another way: it must
refuse (another loss, lr or cache) instead of printing the old run's results."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from calfseg import __version__
from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE
from calfseg.train import TrainConfig, train_run
from calfseg.train.provenance import (
    config_hash,
    provenance_changes,
    read_provenance,
    run_provenance,
)
from calfseg.train.run import RunMismatchError


@pytest.fixture(scope="module")
def finished(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, Path]:
    """One finished tiny run (1 epoch of 2 steps), trained once for the module."""
    config = TrainConfig.tiny(
        cache, epochs=1, max_steps=2, device="cpu", tensorboard=False, loss="bce"
    )
    run = tmp_path_factory.mktemp("finished") / "run"
    train_run(config, run, progress=False)
    return config, run


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def test_the_run_records_its_provenance(finished: tuple[TrainConfig, Path]):
    config, run = finished
    record = json.loads((run / "provenance.json").read_text())
    meta = json.loads((Path(config.cache) / "meta.json").read_text())
    # the digest as cache_digest documents it, computed here independently
    kept = {k: v for k, v in meta.items() if k not in ("created", "calfseg_version")}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode())
    digest.update((Path(config.cache) / "index.csv").read_bytes())
    assert record["cache"]["digest"] == digest.hexdigest()[:16]
    assert record["cache"]["path"] == str(Path(config.cache).resolve())
    assert record["calfseg_version"] == __version__
    assert record["config"]["loss"] == "bce" and record["config"]["lr"] == config.lr
    fingerprint = json.loads((Path(config.cache) / "fingerprint.json").read_text())
    assert record["fingerprint"]["count"] == fingerprint["count"]
    assert record["fingerprint"]["branch"] in ("fisher", "logit", "arcsine", "log10", "ln")
    assert json.loads((run / "done.json").read_text())["provenance"] == record
    assert read_provenance(run) == record


def test_config_hash_ignores_how_a_run_is_carried_out(cache: Path):
    a = TrainConfig.tiny(cache, device="cpu", workers=0).to_dict()
    b = TrainConfig.tiny(str(cache) + "/", device="cuda", workers=4, tensorboard=False)
    assert config_hash(a) == config_hash(b.to_dict())
    assert config_hash(a) != config_hash({**a, "lr": 0.5})
    record = run_provenance(a, digest="0" * 16)
    assert provenance_changes(record, run_provenance(b, digest="0" * 16)) == []
    changed = run_provenance({**a, "epochs": 5}, digest="1" * 16, version="9.9")
    assert provenance_changes(record, changed) == [
        "epochs 2 -> 5",
        "cache digest 00000000.. -> 11111111..",
        f"calf-seg version {__version__} -> 9.9",
    ]


@pytest.mark.parametrize(
    ("change", "named"),
    [({"loss": "dice"}, "loss bce -> dice"), ({"lr": 0.01}, "lr 0.001 -> 0.01")],
)
def test_resume_of_a_finished_run_with_other_options_refuses(
    finished: tuple[TrainConfig, Path], tmp_path: Path, change: dict, named: str
):
    config, run = finished
    run = _copy(run, tmp_path)
    with pytest.raises(RunMismatchError, match="finished run made another way") as err:
        train_run(replace(config, **change), run, progress=False)
    assert named in str(err.value) and "another run folder" in str(err.value)
    # the same options still return the stored results without training
    stamp = (run / "last.pt").stat().st_mtime_ns
    assert train_run(config, run, progress=False)["results"] is not None
    assert (run / "last.pt").stat().st_mtime_ns == stamp


def test_resume_against_a_changed_cache_refuses(finished: tuple[TrainConfig, Path], tmp_path: Path):
    config, run = finished
    run = _copy(run, tmp_path)
    other = tmp_path / "cache"
    shutil.copytree(config.cache, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "splits": {"changed": True}}))
    with pytest.raises(RunMismatchError, match=r"cache digest \w{8}\.\. -> \w{8}\.\."):
        train_run(replace(config, cache=str(other)), run, progress=False)
    # a copy of the same cache elsewhere is the same cache
    same = tmp_path / "same"
    shutil.copytree(config.cache, same)
    assert train_run(replace(config, cache=str(same)), run, progress=False)["results"]


def test_fewer_epochs_than_finished_refuses_and_more_trains_on(
    finished: tuple[TrainConfig, Path], tmp_path: Path
):
    config, run = finished
    run = _copy(run, tmp_path)
    outcome = train_run(replace(config, epochs=2), run, progress=False)
    assert outcome["epochs"] == 2
    rows = (run / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # epoch 1 kept, 2 trained on
    assert read_provenance(run)["config"]["epochs"] == 2  # type: ignore[index]
    with pytest.raises(RunMismatchError, match="finished run of 2 epochs; epochs 1 cannot"):
        train_run(config, run, progress=False)


def test_calf_train_resume_refuses_a_finished_run_with_another_model(
    finished: tuple[TrainConfig, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config, run = finished
    run = _copy(run, tmp_path)
    argv = ["train", "--data", config.cache, "--out", run, "--preset", "tiny", "--epochs", "1"]
    argv += ["--max-steps", "2", "--device", "cpu", "--no-progress", "--loss", "bce"]
    code = main([str(a) for a in [*argv, "--model", "fpn", "--resume"]])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE  # the run in RUN_DIR is in the way (docs/cli.md)
    assert "model unet -> fpn" in err and "--overwrite" in err and "Traceback" not in err


def test_a_run_of_an_older_calfseg_is_compared_by_its_config(
    finished: tuple[TrainConfig, Path], tmp_path: Path
):
    config, run = finished
    run = _copy(run, tmp_path)
    (run / "provenance.json").unlink()
    done = json.loads((run / "done.json").read_text())
    done.pop("provenance")
    (run / "done.json").write_text(json.dumps(done))
    assert read_provenance(run) is None
    with pytest.raises(RunMismatchError, match="loss bce -> focal"):
        train_run(replace(config, loss="focal"), run, progress=False)
    assert train_run(config, run, progress=False)["best_epoch"] == 1
