"""Top-k MIL and InfoNCE losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from vadistill.blocks.mil import (bce_value, info_nce, pseudo_label_info_nce, soft_label_bce, topk_count, topk_mean,
                                  topk_mil_loss)


def test_topk_mean_takes_the_k_largest_valid_scores():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.8, 0.99], [0.5, 0.2, 0.7, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    bag = topk_mean(scores, 2, mask)  # the padded 0.99 must not count
    assert bag.tolist() == pytest.approx([(0.9 + 0.8) / 2, (0.7 + 0.5) / 2])
    per_row = topk_mean(scores, torch.tensor([1, 3]), mask)
    assert per_row.tolist() == pytest.approx([0.9, (0.5 + 0.2 + 0.7) / 3])


def test_topk_count_fixed_ratio_and_clamped_to_length():
    lengths = torch.tensor([2, 10, 40])
    assert topk_count(lengths, k=3).tolist() == [2, 3, 3]
    assert topk_count(lengths, ratio=16).tolist() == [1, 1, 3]  # T // 16 + 1


def test_topk_mil_loss_is_the_bce_of_the_bag_scores():
    scores = torch.tensor([[0.2, 0.9, 0.6], [0.1, 0.3, 0.2]])
    labels = torch.tensor([1, 0])
    loss = topk_mil_loss(scores, labels, 2)
    expected = (bce_value((0.9 + 0.6) / 2, 1) + bce_value((0.3 + 0.2) / 2, 0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_topk_mil_gradient_only_reaches_the_selected_snippets():
    scores = torch.tensor([[0.2, 0.9, 0.6, 0.1]], requires_grad=True)
    topk_mil_loss(scores, torch.tensor([1]), 2).backward()
    assert (scores.grad[0] != 0).tolist() == [False, True, True, False]


def test_info_nce_matches_a_hand_computation():
    anchors = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    keys = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    positive = torch.tensor([[True, False, False], [False, True, False]])
    negative = torch.tensor([[False, True, True], [True, False, True]])
    tau = 0.5
    loss = info_nce(anchors, keys, positive, negative, tau)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))

    a, k = anchors.tolist(), keys.tolist()
    per_anchor = []
    for n in range(2):
        pos = sum(math.exp(cos(a[n], k[m]) / tau) for m in range(3) if positive[n, m])
        neg = sum(math.exp(cos(a[n], k[m]) / tau) for m in range(3) if negative[n, m])
        per_anchor.append(-math.log(pos / (pos + neg)))
    assert loss.item() == pytest.approx(sum(per_anchor) / 2, rel=1e-6)


def test_info_nce_ignores_pairs_in_neither_mask_and_anchors_without_negatives():
    anchors = torch.randn(3, 4)
    keys = torch.randn(3, 4)
    eye = torch.eye(3, dtype=torch.bool)
    negative = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    loss = info_nce(anchors, keys, eye, negative, 0.1)
    only_two = info_nce(anchors[:2], keys[:2], eye[:2, :2], negative[:2, :2], 0.1)
    assert loss.item() == pytest.approx(only_two.item(), rel=1e-6)
    none = info_nce(anchors, keys, eye, torch.zeros(3, 3, dtype=torch.bool), 0.1)
    assert none.item() == 0.0
    with pytest.raises(ValueError):
        info_nce(anchors, keys, eye, negative, 0.0)


def test_pseudo_label_info_nce_uses_the_same_snippet_as_positive_and_the_other_class_as_negatives():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    pseudo = torch.tensor([1, 0, 0, 1])
    loss = pseudo_label_info_nce(student, teacher, pseudo, 0.2)
    positive = torch.eye(4, dtype=torch.bool)
    negative = pseudo[:, None] != pseudo[None, :]
    assert loss.item() == pytest.approx(info_nce(student, teacher, positive, negative, 0.2).item())
    # Aligned student/teacher features with separated classes give a lower loss than shuffled ones.
    aligned = pseudo_label_info_nce(teacher, teacher, pseudo, 0.2)
    shuffled = pseudo_label_info_nce(teacher[[1, 0, 3, 2]], teacher, pseudo, 0.2)
    assert aligned < shuffled


def test_soft_label_bce_respects_the_mask():
    student = torch.tensor([[0.8, 0.4, 0.5]])
    teacher = torch.tensor([[1.0, 0.25, 0.0]])
    mask = torch.tensor([[True, True, False]])
    expected = (-(math.log(0.8)) + -(0.25 * math.log(0.4) + 0.75 * math.log(0.6))) / 2
    assert soft_label_bce(student, teacher, mask).item() == pytest.approx(expected, rel=1e-5)
