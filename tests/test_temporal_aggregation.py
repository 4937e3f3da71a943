"""TAM (disentangled cross-attention): every score term against a naive Python loop, clipping, masking."""

from __future__ import annotations

import math

import pytest
import torch

from vadistill.blocks.temporal_aggregation import TemporalAggregation, relative_position_index


def naive_delta(i: int, j: int, k: int) -> int:
    """DeBERTa's delta(i, j), written as in the paper (Eq. T3)."""
    if i - j <= -k:
        return 0
    if i - j >= k:
        return 2 * k - 1
    return i - j + k


@pytest.mark.parametrize("length, k", [(1, 1), (5, 1), (7, 2), (9, 4), (6, 10)])
def test_relative_position_index_matches_the_definition_and_clips_at_k(length, k):
    index = relative_position_index(length, k)
    assert index.shape == (length, length)
    for i in range(length):
        for j in range(length):
            assert index[i, j].item() == naive_delta(i, j, k)
    assert index.min() >= 0 and index.max() <= 2 * k - 1
    if length > k:  # far pairs share the clipped buckets
        assert index[length - 1, 0].item() == 2 * k - 1 and index[0, length - 1].item() == 0


def test_relative_position_index_rejects_k_below_one():
    with pytest.raises(ValueError):
        relative_position_index(4, 0)


def _heads(x: torch.Tensor, head: int, head_dim: int) -> torch.Tensor:
    return x[..., head * head_dim:(head + 1) * head_dim]


@pytest.mark.parametrize("num_backbones", [1, 3])
@torch.no_grad()
def test_every_attention_term_matches_a_naive_loop(num_backbones):
    torch.manual_seed(0)
    dims = [5, 7, 3][:num_backbones]
    tam = TemporalAggregation(dims, dim=8, heads=2, max_distance=2, dropout=0.0).eval()
    length, batch = 6, 2
    feats = [torch.randn(batch, length, d) for d in dims]
    hidden = tam.project(feats)
    terms = tam.attention_terms(hidden)
    hd, k = tam.head_dim, tam.max_distance
    rel_q = tam.rel_query(tam.rel_embedding)  # (2k, d)
    rel_k = tam.rel_key(tam.rel_embedding)
    for m in range(num_backbones):
        q = tam.query[m](hidden[m])
        key = tam.key[m](hidden[m])
        others = [tam.key[n](hidden[n]) for n in range(num_backbones) if n != m]
        assert set(terms[m]) == ({"c2c_within", "c2c_cross", "c2p", "p2c"} if num_backbones > 1 else {"c2c_within", "c2p", "p2c"})
        for b in range(batch):
            for h in range(2):
                for i in range(length):
                    for j in range(length):
                        qi = _heads(q[b, i], h, hd)
                        kj = _heads(key[b, j], h, hd)
                        within = float(qi @ kj)
                        c2p = float(qi @ _heads(rel_k[naive_delta(i, j, k)], h, hd))
                        p2c = float(kj @ _heads(rel_q[naive_delta(j, i, k)], h, hd))
                        assert terms[m]["c2c_within"][b, h, i, j].item() == pytest.approx(within, abs=1e-5)
                        assert terms[m]["c2p"][b, h, i, j].item() == pytest.approx(c2p, abs=1e-5)
                        assert terms[m]["p2c"][b, h, i, j].item() == pytest.approx(p2c, abs=1e-5)
                        if num_backbones > 1:
                            cross = sum(float(qi @ _heads(o[b, j], h, hd)) for o in others) / len(others)
                            assert terms[m]["c2c_cross"][b, h, i, j].item() == pytest.approx(cross, abs=1e-5)


def test_attention_is_the_scaled_softmax_of_the_summed_terms_and_ignores_padding():
    torch.manual_seed(1)
    tam = TemporalAggregation([4, 6], dim=8, heads=2, max_distance=3, dropout=0.0).eval()
    feats = [torch.randn(1, 5, 4), torch.randn(1, 5, 6)]
    mask = torch.tensor([[True, True, True, False, False]])
    hidden = tam.project(feats)
    weights = tam.attention(hidden, mask)
    terms = tam.attention_terms(hidden)
    for m in range(2):
        logits = sum(terms[m].values()) / math.sqrt(4 * tam.head_dim)
        expected = torch.softmax(logits[..., :3], dim=-1)
        assert torch.allclose(weights[m][..., :3], expected, atol=1e-6)
        assert torch.all(weights[m][..., 3:] < 1e-6)  # padded keys get no weight
    # Padding does not change the valid snippets' outputs.
    full = tam(feats, mask)[:, :3]
    short = tam([f[:, :3] for f in feats])
    assert torch.allclose(full, short, atol=1e-5)


def test_output_shape_and_gradients_reach_every_backbone():
    tam = TemporalAggregation([10, 20, 30], dim=16, heads=4, max_distance=4)
    feats = [torch.randn(3, 9, d, requires_grad=True) for d in (10, 20, 30)]
    out = tam(feats)
    assert out.shape == (3, 9, 16)
    out.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    assert tam.rel_embedding.grad is not None and tam.rel_embedding.grad.abs().sum() > 0
