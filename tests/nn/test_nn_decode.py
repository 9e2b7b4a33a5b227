"""Key generation, encode/decode, and the decode identity logit = W - 2 * Hamming distance."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import whetstone as ws


@pytest.mark.parametrize(("c", "w", "overlapping"), [(10, 100, True), (10, 40, False), (3, 7, True),
                                                     (10, 10, True), (4, 13, False)])
def test_key_shape_and_row_weight(c, w, overlapping):
    key = ws.nn.key_generator(c, w, overlapping=overlapping, seed=1)
    assert key.shape == (c, w)
    assert set(key.unique().tolist()) <= {0.0, 1.0}
    assert key.sum(dim=1).tolist() == [w // c] * c
    codes = {tuple(row.tolist()) for row in key}
    assert len(codes) == c, "every class needs its own code"


def test_disjoint_keys_do_not_overlap():
    key = ws.nn.key_generator(10, 40, overlapping=False, seed=3)
    assert key.sum(dim=0).max().item() == 1.0


def test_key_is_seeded():
    a = ws.nn.key_generator(10, 100, seed=7)
    assert torch.equal(a, ws.nn.key_generator(10, 100, seed=7))
    assert not torch.equal(a, ws.nn.key_generator(10, 100, seed=8))


def test_one_hot_key_is_a_permutation():
    key = ws.nn.key_generator(10, 10, overlapping=True, seed=0)
    assert torch.equal(key.sum(dim=0), torch.ones(10))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 16))
def test_decode_identity_hamming(seed, n):
    g = torch.Generator().manual_seed(seed)
    key = ws.nn.key_generator(10, 100, seed=seed)
    a = torch.randint(0, 2, (n, 100), generator=g).float()
    logits = ws.nn.SoftmaxDecode(key)(a)
    hamming = (a[:, None, :] != key[None, :, :]).sum(dim=2).float()
    assert torch.equal(logits, 100 - 2 * hamming)


def test_decode_affine_form_equals_decode():
    key = ws.nn.key_generator(10, 40, overlapping=False, seed=0)
    a = torch.rand(32, 40)
    weight, bias = ws.nn.decode_affine(key)
    assert torch.allclose(a @ weight.T + bias, ws.nn.SoftmaxDecode(key)(a), atol=1e-5)


def test_encode_then_decode_recovers_labels():
    key = ws.nn.key_generator(10, 100, seed=0)
    labels = torch.arange(10).repeat(3)
    assert torch.equal(ws.nn.decode(ws.nn.encode(labels, key), key), labels)


def test_decode_module_is_not_trained_and_saves_its_key():
    key = ws.nn.key_generator(10, 40, overlapping=False, seed=0)
    module = ws.nn.SoftmaxDecode(key)
    assert list(module.parameters()) == []
    assert torch.equal(module.state_dict()["key"], key)


def test_decode_rejects_bad_key_and_width():
    with pytest.raises(ValueError, match="zeros and ones"):
        ws.nn.SoftmaxDecode(torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="expects 40"):
        ws.nn.SoftmaxDecode(ws.nn.key_generator(10, 40, seed=0))(torch.zeros(2, 39))
