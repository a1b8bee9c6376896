"""Labels, scores and walk-forward splits: hand-computed answers."""

import numpy as np
import pytest

from cobstack.trainer.labels import DOWN, FLAT, NO_LABEL, UP, direction_labels, future_returns, persistence
from cobstack.trainer.metrics import confusion, macro_f1, mcc, scores
from cobstack.trainer.splits import Normaliser, walk_forward


def test_point_labels_use_half_spread_plus_fee_as_the_band():
    mid = np.array([100.0, 100.02, 100.10, 99.90, 100.0])
    spread = np.full(5, 0.02)  # half-spread 0.01 = 1 bp of 100
    # fee 2 bp -> band 3 bp = 0.03 on a 100 mid
    y = direction_labels(mid, spread, [1, 2], taker_fee=2e-4)
    # h=1: +0.02 (flat), +0.08 (up), -0.2 (down), +0.1 (up), end
    assert y[:, 0].tolist() == [FLAT, UP, DOWN, UP, NO_LABEL]
    # h=2: +0.10 up, -0.12 down, -0.10 down, end, end
    assert y[:, 1].tolist() == [UP, DOWN, DOWN, NO_LABEL, NO_LABEL]


def test_smoothed_label_compares_mean_of_next_h_with_mean_of_last_h():
    mid = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    r = future_returns(mid, 2, "smoothed")
    # t=1: past mean (1+2)/2=1.5, future mean (3+4)/2=3.5 -> 3.5/1.5-1
    assert r[1] == pytest.approx(3.5 / 1.5 - 1)
    assert r[3] == pytest.approx(5.5 / 3.5 - 1)
    assert np.isnan(r[0]) and np.isnan(r[4]) and np.isnan(r[5])


def test_unknown_label_kind_and_bad_horizon_are_rejected():
    with pytest.raises(ValueError, match="label kind"):
        future_returns(np.ones(5), 1, "median")
    with pytest.raises(ValueError, match="horizon"):
        future_returns(np.ones(5), 0)


def test_persistence_repeats_the_last_completed_label():
    labels = np.array([[UP], [DOWN], [FLAT], [UP], [NO_LABEL]])
    p = persistence(labels, [2])
    assert p[:, 0].tolist() == [NO_LABEL, NO_LABEL, UP, DOWN, FLAT]


def test_scores_match_hand_computation():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion(y, p, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # per-class F1: c0 2*1/(2+2)=0.5, c1 2*2/(2+3)=0.8, c2 2*1/(2+1)=2/3
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # Gorodkin: c=4, s=6, t=[2,2,2], p=[2,3,1]: (4*6 - 12) / sqrt((36-14)*(36-12))
    assert mcc(cm) == pytest.approx(12 / np.sqrt(22 * 24))
    assert scores(y, y)["mcc"] == pytest.approx(1.0)
    assert scores(y, np.ones_like(y))["mcc"] == 0.0  # a constant forecast carries no information


def test_scores_reject_unlabelled_rows():
    with pytest.raises(ValueError, match="NO_LABEL"):
        confusion(np.array([0, NO_LABEL]), np.array([0, 1]), 3)


@pytest.mark.parametrize("folds", [1, 3])
def test_walk_forward_purges_and_embargoes_every_boundary(folds):
    max_h, embargo = 50, 20
    out = walk_forward(29, 10_000, folds, 0.3, max_h, embargo, val_fraction=0.2)
    assert len(out) == folds
    for k, f in enumerate(out):
        # a fitted sample's label (t + max_h) ends before the validation block, with embargo
        assert f.train.stop - 1 + max_h < f.val.start - embargo
        assert f.val.stop - 1 + max_h < f.test.start - embargo
        assert f.train.start == 29
        if k:
            assert f.test.start == out[k - 1].test.stop  # consecutive blocks
    assert out[-1].test.stop <= 10_000


def test_walk_forward_says_when_history_is_too_short():
    with pytest.raises(ValueError, match="collect more history"):
        walk_forward(0, 300, 3, 0.5, 50, 20)


def test_normaliser_uses_only_what_it_is_fitted_on():
    train = np.array([[1.0, 0.0], [3.0, 2.0]])
    norm = Normaliser.fit(train, np.array([False, False]))
    assert norm(train).mean(axis=0) == pytest.approx([0.0, 0.0])
    future = np.array([[101.0, 2.0]])
    assert norm(future)[0, 0] == pytest.approx((101 - 2) / 1)  # not re-centred on the future
    logged = Normaliser.fit(np.array([[0.0], [np.e - 1]]), np.array([True]))
    assert logged(np.array([[np.e - 1]]))[0, 0] == pytest.approx(1.0)
    back = Normaliser.from_state(norm.state())
    assert back(future) == pytest.approx(norm(future))
