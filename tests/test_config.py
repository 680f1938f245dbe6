from __future__ import annotations

import json

import pytest

from engine.config import RunConfig
from engine.errors import ConfigError


def test_json_round_trip():
    cfg = RunConfig().replace(noise={"length_scale": 1.5}, train={"steps": 10})
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


@pytest.mark.parametrize("section,key,value", [
    ("train", "steps", 0), ("train", "steps", -3), ("train", "batch_size", 0), ("train", "lr", float("nan")),
    ("noise", "length_scale", 0.0), ("noise", "length_scale", -1.0), ("noise", "kernel", "cubic"),
    ("equation", "name", "heat"), ("equation", "schedule", "sigmoid"), ("model", "width", 0),
    ("train", "ema_decay", 1.0),
])
def test_out_of_range_settings_are_config_errors(section, key, value):
    with pytest.raises(ConfigError):
        RunConfig().replace(**{section: {key: value}})


def test_unknown_keys_are_rejected():
    d = RunConfig().to_dict()
    d["train"]["stpes"] = 3
    with pytest.raises(ConfigError, match="stpes"):
        RunConfig.from_dict(d)


def test_options_of_another_modality_are_refused_not_ignored():
    from engine.errors import ConfigError

    cfg = RunConfig().replace(data={"image_size": 28, "fps": 10.0})
    with pytest.raises(ConfigError, match="the data are functions: --image-size, --fps apply to other data"):
        cfg.resolve("functions")
    with pytest.raises(ConfigError, match="the data are images: --fps applies to other data; drop it"):
        RunConfig().replace(data={"fps": 10.0}).resolve("images")
    assert RunConfig().replace(data={"frames": 32, "fps": 25.0}).resolve("motions").data.frames == 32


def test_channel_scale_is_capped_for_motions_own_for_functions_and_own_for_older_runs():
    resolved = {m: RunConfig().resolve(m).data.channel_scale for m in ("functions", "motions", "images")}
    assert resolved == {"functions": "own", "motions": "capped", "images": "auto"}  # images: always [-1, 1]
    assert RunConfig().replace(data={"channel_scale": "capped"}).resolve("functions").data.channel_scale == "capped"
    assert RunConfig().replace(data={"channel_scale": "own"}).resolve("motions").data.channel_scale == "own"
    with pytest.raises(ConfigError, match="the data are images: --channel-scale applies to other data"):
        RunConfig().replace(data={"channel_scale": "capped"}).resolve("images")
    with pytest.raises(ConfigError, match="--channel-scale must be one of auto, own, capped"):
        RunConfig().replace(data={"channel_scale": "rms"})
    # a checkpoint written before the setting was trained with each channel's own scale, and reads so
    old = RunConfig().resolve("motions").to_dict()
    del old["data"]["channel_scale"]
    assert RunConfig.from_dict(old, stored=True).data.channel_scale == "own"
    assert RunConfig.from_dict(old).data.channel_scale == "auto"
