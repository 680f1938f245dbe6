"""engine.io: atomic writes, the HDF5 sample-file schema, checkpoint files."""

from __future__ import annotations

import builtins
import json
import pickle
import stat

import h5py
import numpy as np
import pytest
import torch

from engine.errors import CheckpointError, DataError
from engine.io import (
    MODEL_FORMAT,
    SCHEMA,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    export_csv,
    file_sha256,
    load_model,
    load_train_state,
    read_samples,
    save_model,
    save_train_state,
    write_samples,
)


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- atomic writes ---------------------------------------------------------------------------------
def test_atomic_path_replaces_on_success_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert _leftovers(target.parent) == []
    assert stat.S_IMODE(target.stat().st_mode) & 0o044, "finished files must not stay 0600"


def test_atomic_path_exception_keeps_old_content_and_removes_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_write_text_and_bytes(tmp_path):
    p = atomic_write_text(tmp_path / "x" / "t.json", '{"é": 1}\n')
    assert p.read_text(encoding="utf-8") == '{"é": 1}\n'
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert _leftovers(p.parent) == []


# -- sample files ----------------------------------------------------------------------------------
def _curves(n=5, c=2, points=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c, points)).astype(np.float32), np.linspace(0.0, 1.0, points)


def test_samples_round_trip_with_trajectory_and_provenance(tmp_path):
    x, grid = _curves()
    traj = np.stack([x * s for s in (3.0, 2.0, 1.0)])
    times = np.array([1.0, 0.5, 0.0])
    config = {"run": {"model": {"width": 8}}, "sampling": {"steps": 10}}
    path = write_samples(tmp_path / "s.h5", torch.from_numpy(x), seeds=np.arange(5) + 100, config=config,
                         grid=grid, trajectory=traj, trajectory_times=times, checkpoint_sha256="ab" * 32,
                         extra_attrs={"note": "hi", "n_steps": 10, "sampling": {"sampler": "em"}})
    sf = read_samples(path)
    np.testing.assert_array_equal(sf.samples, x)
    np.testing.assert_array_equal(sf.seeds, np.arange(5) + 100)
    np.testing.assert_array_equal(sf.grid, grid)
    np.testing.assert_array_equal(sf.trajectory, traj.astype(np.float32))
    np.testing.assert_array_equal(sf.trajectory_times, times)
    assert sf.samples.dtype == np.float32 and sf.seeds.dtype == np.int64 and sf.grid.dtype == np.float64
    assert sf.modality == "functions" and sf.config == config and sf.checkpoint_sha256 == "ab" * 32
    assert set(sf.versions) == {"hdm-studio", "python", "torch", "numpy", "h5py", "hdf5"}
    assert sf.versions["hdf5"] == h5py.version.hdf5_version
    assert sf.attrs["note"] == "hi" and sf.attrs["n_steps"] == 10
    assert sf.attrs["sampling"] == {"sampler": "em"} and sf.attrs["config"] == config
    created = sf.attrs["created"]
    assert created.endswith("Z") and created[4] == "-" and created[10] == "T"
    assert _leftovers(tmp_path) == []


def test_sample_file_is_plain_hdf5_readable_by_hdf5_1_10(tmp_path):
    x, grid = _curves()
    path = write_samples(tmp_path / "s.h5", x, seeds=range(5), config={}, grid=grid)
    with h5py.File(path, "r") as f:
        ds = f["samples"]
        assert ds.dtype == np.float32 and ds.shape == x.shape
        assert ds.chunks[0] >= 1 and ds.chunks[1:] == (2, 16)  # whole samples per chunk
        assert ds.compression == "gzip" and ds.compression_opts == 4
        assert f["seeds"].dtype == np.int64 and f["grid"].dtype == np.float64
        assert f.attrs["schema"] == SCHEMA and f.attrs["modality"] == "functions"
        assert f.attrs["checkpoint_sha256"] == ""
        assert json.loads(f.attrs["config"]) == {}
        assert "trajectory" not in f
    # Superblock version (byte 8) 3 = HDF5 1.10 format; libver="latest" under HDF5 2.0 writes newer.
    assert path.read_bytes()[8] <= 3


def test_images_round_trip_and_csv_refused(tmp_path):
    x = np.random.default_rng(1).random((3, 1, 4, 5), dtype=np.float32)
    path = write_samples(tmp_path / "img.h5", x, seeds=[1, 2, 3], config={"a": 1}, modality="images")
    sf = read_samples(path)
    assert sf.modality == "images" and sf.grid is None and sf.trajectory is None
    np.testing.assert_array_equal(sf.samples, x)
    with pytest.raises(DataError, match="png|PNG"):
        export_csv(sf, tmp_path / "img.csv")
    assert not (tmp_path / "img.csv").exists()


def test_export_csv_layout(tmp_path):
    x, grid = _curves(n=2, c=2, points=3)
    path = write_samples(tmp_path / "s.h5", x, seeds=[7, 9], config={}, grid=grid)
    out = export_csv(read_samples(path), tmp_path / "out" / "s.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "channel,sample,seed,0.0,0.5,1.0"
    assert len(lines) == 1 + 2 * 2
    rows = [line.split(",") for line in lines[1:]]
    assert [r[:3] for r in rows] == [["0", "0", "7"], ["1", "0", "7"], ["0", "1", "9"], ["1", "1", "9"]]
    values = np.array([[float(v) for v in r[3:]] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(values, x.reshape(4, 3))  # exact float32 round trip


def test_write_samples_validation(tmp_path):
    x, grid = _curves()
    bad = x.copy()
    bad[0, 0, :3] = np.nan
    with pytest.raises(DataError, match=r"3 of 160 .*NaN"):
        write_samples(tmp_path / "s.h5", bad, seeds=range(5), config={})
    with pytest.raises(DataError, match="5 seeds"):
        write_samples(tmp_path / "s.h5", x, seeds=range(4), config={})
    with pytest.raises(DataError, match="grid has"):
        write_samples(tmp_path / "s.h5", x, seeds=range(5), config={}, grid=grid[:-1])
    with pytest.raises(DataError, match=r"\[N, C, H, W\]"):
        write_samples(tmp_path / "s.h5", x, seeds=range(5), config={}, modality="images")
    assert list(tmp_path.iterdir()) == []


def test_read_samples_errors(tmp_path):
    with pytest.raises(DataError, match="no such sample file"):
        read_samples(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"definitely not hdf5" * 10)
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_samples(tmp_path / "junk.h5")

    x, _ = _curves(n=64, points=64)
    good = write_samples(tmp_path / "good.h5", x, seeds=range(64), config={})
    data = good.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_samples(tmp_path / "trunc.h5")

    with h5py.File(tmp_path / "other.h5", "w", libver=("v110", "v110")) as f:
        f.create_dataset("x", data=np.zeros(3), dtype=np.float64)
    with pytest.raises(DataError, match="has no 'samples' dataset: is it an HDM sample file"):
        read_samples(tmp_path / "other.h5")

    with h5py.File(good, "r+") as f:
        f.attrs["config"] = "{not json"
    with pytest.raises(DataError, match="'config' .*not valid JSON"):
        read_samples(good)


def test_foreign_plain_hdf5_file_is_readable(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("samples", data=np.ones((2, 1, 4)), dtype=np.float64)
    sf = read_samples(tmp_path / "plain.h5")
    assert sf.samples.dtype == np.float32 and sf.config == {} and sf.modality == "functions"
    np.testing.assert_array_equal(sf.seeds, [-1, -1])  # unknown


def test_errors_are_one_line(tmp_path):
    for call in (lambda: read_samples(tmp_path / "m.h5"), lambda: load_model(tmp_path / "m.safetensors")):
        with pytest.raises((DataError, CheckpointError)) as info:
            call()
        assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)


# -- checkpoints -----------------------------------------------------------------------------------
def _state_dict():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_model_round_trip(tmp_path):
    sd = _state_dict()
    sd["tied"] = sd["0.weight"]  # shared memory must not break safetensors
    sd["strided"] = torch.arange(12.0).reshape(3, 4).t()
    config = {"model": {"width": 4}, "seed": 3}
    meta = {"geometry": {"kernel": "rbf", "length": 0.1}, "modality": "functions", "steps": 5}
    path = save_model(tmp_path / "m" / "model.safetensors", sd, config=config, meta=meta)
    loaded = load_model(path)
    assert loaded.config == config
    assert loaded.meta == meta and isinstance(loaded.meta["geometry"], dict)
    assert loaded.sha256 == file_sha256(path) and len(loaded.sha256) == 64
    assert set(loaded.state_dict) == set(sd)
    for k, v in sd.items():
        torch.testing.assert_close(loaded.state_dict[k], v, rtol=0, atol=0)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["format"] == MODEL_FORMAT
    assert _leftovers(path.parent) == []


def test_load_model_rejects_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "none.safetensors")

    path = save_model(tmp_path / "m.safetensors", _state_dict(), config={})
    data = path.read_bytes()
    for n in (4, 40, len(data) // 2, len(data) - 1):
        (tmp_path / "t.safetensors").write_bytes(data[:n])
        with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
            load_model(tmp_path / "t.safetensors")

    rng = np.random.default_rng(0)
    junk = bytes([0x11]) + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "r.safetensors").write_bytes(junk)
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_model(tmp_path / "r.safetensors")

    from safetensors.torch import save_file

    save_file(_state_dict(), str(tmp_path / "foreign.safetensors"), metadata={"author": "someone"})
    with pytest.raises(CheckpointError, match="is not an HDM Studio checkpoint"):
        load_model(tmp_path / "foreign.safetensors")

    torch.save(_state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="is a pickled torch file"):
        load_model(tmp_path / "weights.pt")


def test_checkpoint_whose_header_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    # safetensors starts with its u64 little-endian header length: 128 + 256*k begins with 0x80,
    # the pickle-protocol byte. About 1 checkpoint in 32 has such a header; it must still load.
    path = tmp_path / "m.safetensors"
    for pad in range(300):
        save_model(path, _state_dict(), config={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length of 128 mod 256")
    assert load_model(path).config == {"pad": "x" * pad}

    junk = b"\x80" + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "j.safetensors").write_bytes(junk)
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "j.safetensors")


class _Evil:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_malicious_pickles_are_refused_without_running(tmp_path):
    # The payload is live: plain unpickling does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe))).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"step": 1, "x": _Evil(marker)}))
    torch.save({"step": 1, "x": _Evil(marker)}, tmp_path / "evil.pt")
    for name in ("evil.pkl", "evil.pt"):
        with pytest.raises(CheckpointError, match="pickled torch file.*refusing to load it"):
            load_model(tmp_path / name)
        with pytest.raises(CheckpointError, match="refusing to load it"):
            load_train_state(tmp_path / name)
        assert not marker.exists()


def test_failed_save_leaves_previous_checkpoint_byte_identical(tmp_path, monkeypatch):
    import engine.io.checkpoints as ck

    path = save_model(tmp_path / "model.safetensors", _state_dict(), config={"v": 1})
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, _state_dict(), config={"v": 2})
    assert path.read_bytes() == before
    assert load_model(path).config == {"v": 1}
    assert _leftovers(tmp_path) == []

    state_path = save_train_state(tmp_path / "train_state.pt", {"step": 1})
    state_before = state_path.read_bytes()
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_train_state(state_path, {"step": 2, "bad": lambda: None})  # unpicklable mid-write
    assert state_path.read_bytes() == state_before and _leftovers(tmp_path) == []


def test_train_state_round_trip(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.99))
    net(torch.randn(4, 3)).square().mean().backward()
    opt.step()
    gen = torch.Generator().manual_seed(123)
    torch.rand(3, generator=gen)
    state = {
        "step": 7,
        "elapsed": 1.25,
        "config": json.dumps({"a": 1}),
        "network": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "losses": torch.tensor([0.5, 0.25], dtype=torch.float64),
    }
    path = save_train_state(tmp_path / "run" / "train_state.pt", state)
    back = load_train_state(path)
    assert back["step"] == 7 and back["elapsed"] == 1.25 and back["config"] == state["config"]
    assert back["generator"].dtype == torch.uint8
    torch.testing.assert_close(back["losses"], state["losses"])
    opt2 = torch.optim.AdamW(net.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert opt2.state_dict()["param_groups"][0]["betas"] == (0.9, 0.99)
    exp_avg = opt.state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], exp_avg)
    gen2 = torch.Generator()
    gen2.set_state(back["generator"])
    torch.testing.assert_close(torch.rand(5, generator=gen2), torch.rand(5, generator=gen))


def test_load_train_state_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such training-state file"):
        load_train_state(tmp_path / "none.pt")
    path = save_train_state(tmp_path / "s.pt", {"w": torch.zeros(1000)})
    data = path.read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a training-state file"):
        load_train_state(tmp_path / "t.pt")
    (tmp_path / "r.pt").write_bytes(b"\x11" * 100)
    with pytest.raises(CheckpointError, match="truncated or not a training-state file"):
        load_train_state(tmp_path / "r.pt")


# -- malformed sample files from other programs -------------------------------------------------------
def _foreign(path, samples, grid=None, attrs=None, trajectory=None, times=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("samples", data=samples)
        if grid is not None:
            f.create_dataset("grid", data=grid)
        if trajectory is not None:
            f.create_dataset("trajectory", data=trajectory)
            f.create_dataset("trajectory_times", data=times)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def _bad_sample_files():
    x = np.random.default_rng(0).standard_normal((4, 2, 8))
    nan, inf = x.copy(), x.copy()
    nan[1, 0, :3] = np.nan
    inf[2, 1, 5] = -np.inf
    grid = np.linspace(0.0, 1.0, 8)
    gnan, ginf, grev, gdup = grid.copy(), grid.copy(), grid[::-1].copy(), grid.copy()
    gnan[3], ginf[7], gdup[4] = np.nan, np.inf, gdup[3]
    traj = np.stack([x, x])
    traj[0, 0, 0, 0] = np.nan
    return {
        "empty channel axis": (dict(samples=np.zeros((4, 0, 8))), r"shape \(4, 0, 8\), with an empty axis"),
        "empty point axis": (dict(samples=np.zeros((4, 2, 0)), grid=np.zeros(0)), r"\(4, 2, 0\), with an empty axis"),
        "nan samples": (dict(samples=nan), r"3 of 64 'samples' values are not finite \(3 NaN, 0 infinite\)"),
        "inf samples": (dict(samples=inf), r"1 of 64 'samples' values are not finite \(0 NaN, 1 infinite\)"),
        "beyond float32": (dict(samples=x * 1e300), r"values are not finite .*beyond the float32 range"),
        "nan grid": (dict(samples=x, grid=gnan), r"1 of 8 'grid' values are not finite"),
        "inf grid": (dict(samples=x, grid=ginf), r"1 of 8 'grid' values are not finite"),
        "decreasing grid": (dict(samples=x, grid=grev), "'grid' is not strictly increasing"),
        "repeated grid point": (dict(samples=x, grid=gdup), "'grid' is not strictly increasing"),
        "string grid": (dict(samples=x, grid=np.array([b"a"] * 8)), "'grid' has dtype .*expected numbers"),
        "unknown modality": (dict(samples=x, attrs={"modality": "banana"}), "modality 'banana'; expected one of"),
        "numeric modality": (dict(samples=x, attrs={"modality": 3}), "modality 3; expected one of"),
        "nan trajectory": (dict(samples=x, trajectory=traj, times=np.array([1.0, 0.0])),
                           r"1 of 128 'trajectory' values are not finite"),
    }


@pytest.mark.parametrize("case", sorted(_bad_sample_files()))
def test_malformed_foreign_sample_files_are_refused_in_one_line(tmp_path, case):
    kwargs, pattern = _bad_sample_files()[case]
    path = _foreign(tmp_path / "foreign.h5", **kwargs)
    with pytest.raises(DataError, match=pattern) as info:
        read_samples(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_the_writers_files_of_every_modality_still_read(tmp_path):
    x, grid = _curves()
    for modality, data, g in (("functions", x, grid), ("motions", x, np.arange(16) / 30.0),
                              ("images", np.random.default_rng(2).random((2, 3, 4, 4)), None)):
        path = write_samples(tmp_path / f"{modality}.h5", data, seeds=range(len(data)), config={}, modality=modality,
                             grid=g)
        sf = read_samples(path)
        assert sf.modality == modality and sf.samples.shape == data.shape
    # foreign files: integers, a modality given as bytes, no modality at all
    path = _foreign(tmp_path / "ints.h5", np.arange(24).reshape(2, 3, 4), grid=np.array([0, 1, 2, 5]),
                    attrs={"modality": np.bytes_(b"motions")})
    sf = read_samples(path)
    assert sf.modality == "motions" and sf.samples.dtype == np.float32 and sf.grid.tolist() == [0, 1, 2, 5]
