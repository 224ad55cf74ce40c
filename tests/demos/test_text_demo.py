"""The text transformer's synthetic task and its ground-truth scores (keras_lrp.demos.text):
the labels follow the task's definition, the scores equal values worked out by hand, and the
shipped model's AttnLRP explanations find the sentiment words."""

import pathlib

import keras
import numpy as np
import pytest

import keras_lrp
from keras_lrp.demos import text as td

MODELS = pathlib.Path(__file__).resolve().parents[2] / "keras_lrp" / "demos" / "models"


def test_sentiment_data_follows_its_definition():
    x, y = td.sentiment_data(500, seed=3)
    assert x.shape == (500, td.LENGTH) and x.dtype == np.int32
    pos = np.isin(x, td.POSITIVE).sum(axis=1)
    neg = np.isin(x, td.NEGATIVE).sum(axis=1)
    np.testing.assert_array_equal(y, (pos > neg).astype(np.int32))
    assert pos.max() <= 3 and neg.max() <= 3 and np.all(pos != neg)
    lengths = (x != 0).sum(axis=1)
    assert lengths.min() >= 8 and lengths.max() <= td.LENGTH
    for row, n in zip(x, lengths):  # the padding (0) comes after the words, and only there
        assert np.all(row[:n] != 0) and np.all(row[n:] == 0)


def test_ground_truth_scores_by_hand():
    tokens = np.array([[2, 6, 10, 0], [3, 7, 11, 12]])
    relevance = np.array([[1.0, -0.5, 0.5, 9.0],    # padding ignored: share 1.5 / 2.0
                          [-1.0, -2.0, 0.5, 0.5]])  # share 3 / 4
    predictions = np.array([1, 0])
    # sample 0, prediction 1: "good" votes +, R > 0 agrees; "bad" votes −, R < 0 agrees.
    # sample 1, prediction 0: "great" votes −, R < 0 agrees; "awful" votes +, R < 0 disagrees.
    scores = td.ground_truth_scores(relevance, tokens, predictions)
    assert scores["sentiment share"] == pytest.approx((0.75 + 0.75) / 2)
    assert scores["sign agreement"] == pytest.approx(3 / 4)


def test_shipped_text_transformer_explanations_find_the_sentiment_words():
    model = keras.models.load_model(MODELS / "sentiment_transformer.keras")
    data = np.load(MODELS / "sentiment_test.npz")
    x, y = data["x"][:200], data["y"][:200]
    predictions = model.predict(x, verbose=0).argmax(axis=1)
    assert np.mean(predictions == y) >= 0.95
    relevance = keras_lrp.create_analyzer("lrp.z", model).analyze(x)
    scores = td.ground_truth_scores(relevance, x, predictions)
    chance = float((np.isin(x, td.POSITIVE + td.NEGATIVE).sum(1) / (x != 0).sum(1)).mean())
    assert scores["sentiment share"] > 3 * chance
    assert scores["sign agreement"] >= 0.95
