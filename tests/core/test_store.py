"""core.store against a real S3-API server (moto's, a separate process): what one host
publishes another reads, and a publish that fails half way never spoils the published pair."""

from __future__ import annotations

import pytest

from core.config import Settings, is_url
from core.store import LocalStore, RemoteStore, open_store
from trainer import checkpoint

RUN = 7


def state(epoch: int) -> dict:
    """The smallest dict trainer.checkpoint accepts as a checkpoint."""
    return {
        "format": checkpoint.FORMAT,
        "config": {},
        "epoch": epoch,
        "model": {},
        "optimizer": {},
        "rng": {},
        "history": [],
    }


def settings_for(monkeypatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


@pytest.fixture
def host(s3_bucket, tmp_path, monkeypatch):
    """host("a") -> the store as seen from a host with its own cache folder."""
    base = {"RUNS_DIR": f"s3://{s3_bucket}/runs", "RESNET_LAB_HOME": str(tmp_path / "home")}

    def make(name: str) -> RemoteStore:
        store = open_store(settings_for(monkeypatch, **base, CACHE_DIR=str(tmp_path / name)))
        assert isinstance(store, RemoteStore)
        return store

    return make


def train_epochs(store: RemoteStore, epochs: range):
    """What a worker does: pull, then save and push after each epoch."""
    local = store.pull(RUN)
    for epoch in epochs:
        store.push(RUN, checkpoint.save(local, state(epoch)).parent)
    return local


def published(store: RemoteStore) -> dict[str, int]:
    """Epoch of each checkpoint file a fresh host would start from."""
    local = store.pull(RUN)
    return {name: checkpoint.read(local / name)["epoch"] for name in ("last.pt", "prev.pt")}


def test_what_one_host_publishes_another_host_resumes_from(host):
    train_epochs(host("a"), range(1, 4))
    b = host("b")
    assert published(b) == {"last.pt": 3, "prev.pt": 2}
    train_epochs(b, range(4, 5))
    assert published(host("c")) == {"last.pt": 4, "prev.pt": 3}
    assert sorted(k.rsplit("/", 1)[1] for k in b.fs.ls(b.key(RUN))) == ["last.pt", "prev.pt"]


def test_a_failed_upload_leaves_the_previous_last_pt_readable(host, monkeypatch):
    a = host("a")
    local = train_epochs(a, range(1, 3))
    real_put = a.fs.put_file

    def torn_put(lpath, rpath, **kwargs):
        # Half the bytes reach the server under the key being written, then the link drops.
        data = open(lpath, "rb").read()
        a.fs.pipe_file(rpath, data[: len(data) // 2])
        raise ConnectionError("connection reset")

    monkeypatch.setattr(a.fs, "put_file", torn_put)
    with pytest.raises(ConnectionError):
        a.push(RUN, checkpoint.save(local, state(3)).parent)
    monkeypatch.setattr(a.fs, "put_file", real_put)

    b = host("b")
    assert published(b) == {"last.pt": 2, "prev.pt": 1}
    assert checkpoint.load(b.pull(RUN))["epoch"] == 2
    # The torn temporary object is cleared by the next pull.
    assert sorted(k.rsplit("/", 1)[1] for k in b.fs.ls(b.key(RUN))) == ["last.pt", "prev.pt"]


def test_a_crash_between_rotating_prev_and_replacing_last_leaves_a_good_last(host, monkeypatch):
    a = host("a")
    local = train_epochs(a, range(1, 3))
    real_copy = a.fs.copy

    def copy_then_die(src, dst, **kwargs):
        if dst.endswith("/last.pt"):
            raise KeyboardInterrupt  # the process dies before last.pt is replaced
        return real_copy(src, dst, **kwargs)

    monkeypatch.setattr(a.fs, "copy", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        a.push(RUN, checkpoint.save(local, state(3)).parent)
    assert published(host("b")) == {"last.pt": 2, "prev.pt": 2}


def test_a_corrupt_published_last_pt_falls_back_to_prev_and_is_not_rotated_into_it(host):
    a = host("a")
    train_epochs(a, range(1, 3))
    a.fs.pipe_file(a.key(RUN, "last.pt"), b"torn")

    b = host("b")
    local = b.pull(RUN)
    warnings: list[str] = []
    assert checkpoint.load(local, warnings)["epoch"] == 1 and warnings
    b.push(RUN, checkpoint.save(local, state(2)).parent)
    # prev.pt is the good epoch-1 file this host kept, not the corrupt one it set aside.
    assert published(host("c")) == {"last.pt": 2, "prev.pt": 1}


def test_download_streams_the_published_checkpoint_and_delete_removes_it(host):
    a = host("a")
    local = train_epochs(a, range(1, 2))
    name, size, chunks = a.open_checkpoint(RUN)
    assert name == "last.pt" and b"".join(chunks) == (local / "last.pt").read_bytes()
    assert size == (local / "last.pt").stat().st_size
    a.delete(RUN)
    assert a.open_checkpoint(RUN) is None and not local.exists()


def test_a_local_runs_dir_is_the_store_itself_with_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNS_DIR", raising=False)
    settings = settings_for(monkeypatch, RESNET_LAB_HOME=str(tmp_path))
    store = open_store(settings)
    assert isinstance(store, LocalStore)
    assert store.pull(RUN) == tmp_path.resolve() / "runs" / f"run-{RUN}"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("location", "remote"),
    [("s3://b/p", True), ("gs://b", True), ("/srv/runs", False), ("file:///srv", False),
     ("runs", False), (None, False)],
)  # fmt: skip
def test_runs_dir_urls_are_remote_and_paths_are_folders(location, remote):
    assert is_url(location) is remote
