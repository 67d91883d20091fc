import json
import pickle

import pytest

import training
from training.errors import ArtifactError


@pytest.fixture(scope="module")
def saved(fair_split, tmp_path_factory):
    train, _ = fair_split
    model = training.fit(train, training.TrainSpec(dp=training.DPConfig(epsilon=2.0), epochs=3))
    path = tmp_path_factory.mktemp("artifact") / "model"
    model.save(path)
    return model, path


def test_round_trip_gives_the_same_samples(saved):
    model, path = saved
    loaded = training.load(path)
    assert loaded.sample(500, seed=1).equals(model.sample(500, seed=1))
    config = json.loads((path / "config.json").read_text())
    for key in ("epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "max_grad_norm",
                "accountant", "epsilon_preprocessing", "epsilon_training"):  # fmt: skip
        assert key in config["privacy"]
    assert config["versions"]["torch"] and config["versions"]["opacus"]


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/sanitas-pwned",))


def test_a_crafted_pickle_is_refused_without_running(saved, tmp_path):
    _, path = saved
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.safetensors").write_bytes(pickle.dumps(_Payload()))
    config = json.loads((path / "config.json").read_text())
    import hashlib

    config["weights_sha256"] = hashlib.sha256((evil / "model.safetensors").read_bytes()).hexdigest()
    (evil / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="not a safetensors file"):
        training.load(evil)
    import os

    assert not os.path.exists("/tmp/sanitas-pwned")


def test_a_truncated_weights_file_is_refused(saved, tmp_path):
    _, path = saved
    cut = tmp_path / "cut"
    cut.mkdir()
    data = (path / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    (cut / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ArtifactError, match="corrupted or truncated"):
        training.load(cut)


def test_foreign_and_missing_artifacts_are_refused(saved, tmp_path):
    _, path = saved
    with pytest.raises(ArtifactError, match="not an artifact"):
        training.load(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    config = json.loads((path / "config.json").read_text())
    (foreign / "config.json").write_text(json.dumps({**config, "format": "huggingface"}))
    with pytest.raises(ArtifactError, match="format='huggingface'"):
        training.load(foreign)
    (foreign / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not a valid artifact config"):
        training.load(foreign)


def test_dp_artifact_holds_nothing_outside_the_accounting(cps, tmp_path):
    """Rare values and per-epoch training losses (never noised) must not reach the file."""
    frame = cps.sample(4_000, random_state=2).copy()
    frame.loc[frame.index[:3], "region"] = "atlantis-marker"
    frame["wage"] = frame["wage"].astype(float)
    frame.loc[frame.index[3], "wage"] = 987654.321  # a lone outlier
    model = training.fit(frame, training.TrainSpec(dp=training.DPConfig(epsilon=1.0), epochs=2))
    model.save(tmp_path / "m")
    text = (tmp_path / "m" / "config.json").read_text()
    assert "atlantis-marker" not in text
    assert "987654" not in text
    assert "epoch_losses" not in text
    wage = next(e for e in model.encoder.columns if e.name == "wage")
    assert wage.value_range[1] < 987654.321
    sample = model.sample(20_000, seed=0)
    assert not (sample["region"] == "atlantis-marker").any()
