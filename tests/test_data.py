"""Datasets: MNIST-1D generated and cached; CIFAR-10 read from an archive in the official format."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from lsutils import data


def test_mnist1d_is_generated_then_cached(data_root, monkeypatch):
    ds = data.mnist1d(num_samples=400)
    assert ds.x_train.shape == (320, 1, 40) and ds.x_test.shape == (80, 1, 40)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert set(ds.y_train.tolist()) == set(range(10)) and ds.dim == 1 and ds.in_channels == 1
    assert list((data_root / "raw").glob("mnist1d_n400_*.npz"))
    import mnist1d.data
    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a, **k: pytest.fail("regenerated"))
    again = data.mnist1d(num_samples=400)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


def test_mnist1d_matches_the_package_generator(data_root):
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.num_samples = 200
    ref = make_dataset(args)
    ds = data.mnist1d(num_samples=200)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), ref["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds.y_test.numpy(), ref["y_test"])


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(data.DatasetError, match="unknown dataset 'mnist'; allowed: mnist1d, cifar10"):
        data.load_dataset("mnist")
    with pytest.raises(data.DatasetError, match="num_samples = 15"):
        data.mnist1d(num_samples=15)


def _official_archive(path, n_per_batch=6, n_test=5, seed=0):
    """A small archive laid out exactly as cifar-10-python.tar.gz: pickled dicts with
    b'data' (uint8 [N, 3072], channel-major rows) and b'labels'."""
    rng = np.random.default_rng(seed)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            n = n_test if name == "test_batch" else n_per_batch
            d = {b"batch_label": name.encode(), b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"filenames": [b"x.png"] * n}
            batches[name] = d
            blob = pickle.dumps(d, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        meta = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return batches, hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_reads_the_official_format(data_root):
    raw = data_root / "raw"
    raw.mkdir(parents=True)
    batches, md5 = _official_archive(raw / data.CIFAR10_ARCHIVE)
    ds = data.cifar10(download=False, md5=md5)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.y_train.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    # undo the per-channel normalisation and compare pixels: row layout is R(1024) G B, row-major
    raw_train = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    pixels = torch.as_tensor(raw_train, dtype=torch.float32).reshape(-1, 3, 32, 32) / 255
    mean, std = pixels.mean((0, 2, 3), keepdim=True), pixels.std((0, 2, 3), keepdim=True)
    torch.testing.assert_close(ds.x_train, (pixels - mean) / std)
    test_pixels = torch.as_tensor(batches["test_batch"][b"data"], dtype=torch.float32).reshape(-1, 3, 32, 32) / 255
    torch.testing.assert_close(ds.x_test, (test_pixels - mean) / std)
    assert float(ds.x_test[2, 1, 5, 7]) == pytest.approx(
        (batches["test_batch"][b"data"][2, 1024 + 5 * 32 + 7] / 255 - float(mean[0, 1])) / float(std[0, 1]),
        rel=1e-5)


def test_cifar10_checksum_mismatch_is_refused(data_root, monkeypatch):
    raw = data_root / "raw"
    raw.mkdir(parents=True)
    _official_archive(raw / data.CIFAR10_ARCHIVE)
    monkeypatch.setattr(data, "_read_batches", lambda *a: pytest.fail("a bad file was read"))
    with pytest.raises(data.DatasetError, match=r"has md5 [0-9a-f]{32}, expected 0{32}"):
        data.cifar10(download=False, md5="0" * 32)


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server over ``tmp_path / "mirror"``."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cifar10_download_once_with_checksum(mirror, data_root):
    folder, base = mirror
    src = folder / data.CIFAR10_ARCHIVE
    _, md5 = _official_archive(src)
    url = f"{base}/{data.CIFAR10_ARCHIVE}"
    with pytest.raises(data.DatasetError, match="it was discarded"):
        data.cifar10(url=url, md5="f" * 32)
    assert [p for p in (data_root / "raw").iterdir() if p.is_file()] == []  # nothing kept, no partial file
    ds = data.cifar10(url=url, md5=md5)
    assert (data_root / "raw" / data.CIFAR10_ARCHIVE).read_bytes() == src.read_bytes()
    src.unlink()  # the second call must not download again
    assert torch.equal(data.cifar10(url=url, md5=md5).x_train, ds.x_train)


def test_cifar10_checksum_from_the_environment(data_root, monkeypatch):
    raw = data_root / "raw"
    raw.mkdir(parents=True)
    _, md5 = _official_archive(raw / data.CIFAR10_ARCHIVE)
    with pytest.raises(data.DatasetError, match=f"has md5 {md5}, expected c58f3010"):
        data.cifar10(download=False)
    monkeypatch.setenv(data.CIFAR10_MD5_ENV, md5)
    assert data.load_dataset("cifar10").x_train.shape == (30, 3, 32, 32)


def test_cifar10_offline_says_where_to_put_it(data_root):
    with pytest.raises(data.DatasetError, match=r"put cifar-10-python.tar.gz \(md5 c58f3010"):
        data.cifar10(download=False)
    with pytest.raises(data.DatasetError, match="offline, put cifar-10-python.tar.gz"):
        data.cifar10(url="http://127.0.0.1:9/cifar-10-python.tar.gz")


def test_label_noise_replaces_exactly_that_fraction_with_other_classes():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (1000,), generator=g)
    ds = data.Dataset("toy", torch.zeros(1000, 1, 4), y, torch.zeros(10, 1, 4), y[:10])
    noisy = ds.with_label_noise(0.3, seed=1)
    changed = noisy.y_train != y
    assert int(changed.sum()) == 300 and noisy.y_train.min() >= 0 and noisy.y_train.max() < 10
    assert torch.equal(noisy.y_test, ds.y_test) and torch.equal(noisy.x_train, ds.x_train)
    assert noisy.name == "toy+noise0.3s1"
    assert torch.equal(ds.with_label_noise(0.3, seed=1).y_train, noisy.y_train)  # deterministic
    with pytest.raises(ValueError, match="fraction"):
        ds.with_label_noise(1.5)
