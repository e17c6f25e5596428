"""The tokeniser and the review / newsgroup datasets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hgcnet_jax.data import ChecksumError, CorruptFileError, Tokenizer, load


def test_tokenize_lowercases_and_strips_html():
    text = "I LOVE it.<br /><br />Don't buy the 2nd one &amp; its <i>sugar</i>-free twin!"
    assert Tokenizer.tokenize(text) == [
        "i", "love", "it", "don't", "buy", "the", "2nd", "one", "its", "sugar", "free", "twin",
    ]  # fmt: skip


def test_fit_vocabulary_order_min_count_and_size():
    texts = ["b a a c", "a b d", "e"]
    tok = Tokenizer.fit(texts, max_len=4, min_count=1)
    assert tok.vocab == ("a", "b", "c", "d", "e")  # by count, ties alphabetical
    assert tok.vocab_size == 7
    assert Tokenizer.fit(texts, max_len=4, min_count=2).vocab == ("a", "b")
    assert Tokenizer.fit(texts, max_len=4, min_count=1, max_vocab=4).vocab == ("a", "b")


def test_encode_pads_truncates_and_marks_unknown():
    tok = Tokenizer.fit(["x y z", "x y", "x"], max_len=3, min_count=1)
    ids = tok.encode(["x", "z y x q", "unseen words only here"])
    assert ids.dtype == np.int32 and ids.shape == (3, 3)
    x, y, z = 2, 3, 4
    np.testing.assert_array_equal(ids, [[x, 0, 0], [z, y, x], [1, 1, 1]])
    assert tok.decode(ids[1]) == ["z", "y", "x"]
    assert tok.decode([2, 1, 0]) == ["x", "<unk>"]


def test_tokenizer_arguments_are_checked():
    with pytest.raises(ValueError, match="max_vocab"):
        Tokenizer.fit(["a"], max_vocab=2)
    with pytest.raises(ValueError, match="min_count"):
        Tokenizer.fit(["a"], min_count=0)
    with pytest.raises(ValueError, match="max_len"):
        Tokenizer.fit(["a"], max_len=0)
    with pytest.raises(TypeError, match="not one string"):
        Tokenizer.fit("a b c")
    with pytest.raises(ValueError, match="repeat"):
        Tokenizer(vocab=("a", "a"), max_len=3)


@pytest.fixture(scope="module")
def reviews(data_dir):
    return load("amazon_reviews", root=data_dir, max_len=64)


def test_amazon_reviews_counts(reviews):
    assert reviews.kind == "text" and reviews.num_classes == 2
    assert reviews.x.shape == (5000, 64) and reviews.x.dtype == np.int32
    assert (reviews.train_idx.size, reviews.test_idx.size) == (4000, 1000)
    great = reviews.meta["class_names"].index("great")
    assert int((reviews.y[reviews.train_idx] == great).sum()) == 2600
    assert int((reviews.y[reviews.train_idx] != great).sum()) == 1400
    assert int((reviews.y[reviews.test_idx] == great).sum()) == 658
    assert int((reviews.y[reviews.test_idx] != great).sum()) == 342
    assert reviews.x.max() < reviews.meta["vocab_size"]
    assert "br" not in reviews.meta["tokenizer"].vocab  # <br /> is markup, not a word


def test_reviews_carry_label_signal(reviews):
    """End to end: a bag-of-ids logistic regression beats the majority class by a wide margin."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    n, length = reviews.x.shape
    ids = reviews.x.ravel()
    rows = np.repeat(np.arange(n), length)
    known = ids > 1
    bow = sp.csr_matrix((np.ones(known.sum()), (rows[known], ids[known])), shape=(n, reviews.meta["vocab_size"]))
    bow.data = np.log1p(bow.data)
    clf = LogisticRegression(max_iter=1000).fit(bow[reviews.train_idx], reviews.y[reviews.train_idx])
    accuracy = (clf.predict(bow[reviews.test_idx]) == reviews.y[reviews.test_idx]).mean()
    assert accuracy > 0.72  # majority class: 658 / 1000


def test_vocabulary_is_built_on_the_training_split_only(reviews, data_dir):
    import pandas as pd

    folder = data_dir / "text" / "amazon-fine-foods"
    train = pd.read_csv(folder / "train.csv", keep_default_na=False)["review"].tolist()
    test = pd.read_csv(folder / "test.csv", keep_default_na=False)["review"].tolist()
    tok = reviews.meta["tokenizer"]
    assert tok == Tokenizer.fit(train, max_len=64)
    assert tok != Tokenizer.fit(train + test, max_len=64)
    np.testing.assert_array_equal(reviews.x[reviews.test_idx], tok.encode(test))
    assert (reviews.x[reviews.test_idx] == 1).any()  # test-only words are unknown


def test_vocabulary_excludes_the_validation_carve_out(data_dir):
    ds = load("amazon_reviews", root=data_dir, val_fraction=0.25, min_count=1, max_vocab=10**6)
    assert (ds.train_idx.size, ds.val_idx.size) == (3000, 1000)
    assert np.bincount(ds.y[ds.val_idx]).tolist() == [350, 650]
    # with min_count=1 and no cap, unknown ids occur in val/test but never in train
    assert not (ds.x[ds.train_idx] == 1).any()
    assert (ds.x[ds.val_idx] == 1).any()


def test_bad_csv_is_named(tmp_path, isolated, data_dir):
    folder = tmp_path / "text" / "amazon-fine-foods"
    folder.mkdir(parents=True)
    shutil.copy(data_dir / "text" / "amazon-fine-foods" / "test.csv", folder / "test.csv")
    (folder / "train.csv").write_text("product,review,score\nB1,fine,meh\n")
    with pytest.raises(ChecksumError, match=r"train\.csv"):
        load("amazon_reviews", root=tmp_path)
    digest = __import__("hashlib").sha256((folder / "train.csv").read_bytes()).hexdigest()
    with pytest.raises(CorruptFileError, match=r"train\.csv.*score must be"):
        load("amazon_reviews", root=tmp_path, checksums={"train.csv": digest})


def test_newsgroups_counts(data_dir):
    ds = load("newsgroups", root=data_dir, remove=("headers", "footers"), max_len=32)  # quote stripping is slow
    assert ds.num_classes == 20 and len(ds.meta["class_names"]) == 20
    assert (ds.train_idx.size, ds.test_idx.size) == (11314, 7532)
    med = ds.meta["class_names"].index("sci.med")
    assert int((ds.y[ds.train_idx] == med).sum()) == 594
    assert int((ds.y[ds.test_idx] == med).sum()) == 396
    assert ds.meta["vocab_size"] == 20_000


def test_newsgroups_med_task(data_dir):
    ds = load("newsgroups_med", root=data_dir, remove=(), max_len=32)
    assert ds.num_classes == 2 and ds.meta["class_names"] == ("other", "sci.med")
    assert np.bincount(ds.y[ds.train_idx]).tolist() == [1779, 594]
    assert np.bincount(ds.y[ds.test_idx]).tolist() == [1183, 396]
    assert set(ds.meta["groups"]) == {"sci.crypt", "sci.electronics", "sci.med", "sci.space"}
    # headers kept (remove=()), so the group name is in the text: the point of the default remove=
    assert "med" in ds.meta["tokenizer"].vocab


def test_corrupt_newsgroups_cache_never_reaches_scikit_learn(tmp_path, isolated, monkeypatch):
    import sklearn.datasets

    def boom(**kwargs):
        raise AssertionError("scikit-learn must not unpickle an unverified file")

    monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", boom)
    folder = tmp_path / "scikit_learn_data"
    folder.mkdir()
    (folder / "20news-bydate_py3.pkz").write_bytes(b"x\x9c" + b"\x00" * 100)
    with pytest.raises(ChecksumError, match=r"20news-bydate_py3\.pkz"):
        load("newsgroups", root=tmp_path)


def test_text_option_errors(data_dir):
    with pytest.raises(ValueError, match="against"):
        load("newsgroups_med", root=data_dir, against="biology")
    with pytest.raises(ValueError, match="remove"):
        load("newsgroups", root=data_dir, remove=("signatures",))
    with pytest.raises(ValueError, match="val_fraction"):
        load("amazon_reviews", root=data_dir, val_fraction=1.0)


def test_newsgroups_without_local_copy_uses_scikit_learns_download(isolated, monkeypatch):
    import sklearn.datasets
    from sklearn.utils import Bunch

    calls = []
    groups = [f"g{i}" for i in range(19)] + ["sci.med"]

    def fake_fetch(**kwargs):
        calls.append(kwargs)
        split = ["train"] * 4 + ["test"] * 2
        return Bunch(
            data=[f"post {i} about sci.med" for i in range(6)],
            target=np.arange(6) % 20,
            target_names=groups,
            filenames=np.array([f"/x/20news_home/20news-bydate-{s}/g/{i}" for i, s in enumerate(split)]),
        )

    monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", fake_fetch)
    ds = load("newsgroups", min_count=1)
    assert len(calls) == 1  # the fresh cache file is never unpickled: one call returns both subsets
    assert calls[0]["data_home"] == str(isolated / "scikit_learn_data")
    assert calls[0]["download_if_missing"] is True and calls[0]["shuffle"] is False and calls[0]["subset"] == "all"
    assert (ds.train_idx.size, ds.test_idx.size) == (4, 2)
    # with download=False the same situation is an error listing the places searched
    with pytest.raises(FileNotFoundError, match=r"(?s)20news-bydate_py3\.pkz not found.*download=False"):
        load("newsgroups", download=False)


def test_reserved_ids_are_exported():
    from hgcnet_jax.data import PAD_ID, UNK_ID

    tok = Tokenizer(vocab=("a",), max_len=3)
    np.testing.assert_array_equal(tok.encode(["a b"]), [[2, UNK_ID, PAD_ID]])
    assert (PAD_ID, UNK_ID) == (0, 1)
