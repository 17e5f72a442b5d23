"""NAS-Bench-101 space: the official hash and pruning rules, the width rule and f_proxy
parameter counts, the samplers, the sub-spaces of dynamic_channels=disabled, and (slow) the
enumeration of all 423,624 architectures."""

from __future__ import annotations

import itertools
import time
import zipfile
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from nasheur.config import ConfigError, validate
from nasheur.spaces import get_space, space_names
from nasheur.spaces.nb101 import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAXPOOL3X3,
    NUM_UNIQUE,
    OPS,
    OUTPUT,
    SUBSPACES,
    Catalogue,
    NB101RandomSubset,
    NB101Space,
    NB101Spec,
    NB101SubSpace,
    build_catalogue,
    canonical,
    make_spec,
    random_spec,
    read_catalogue,
    save_catalogue,
    spec_hash,
    vertex_widths,
)
from tests.conftest import compose_job

SPACE = get_space("nb101")
C3, C1, MP = CONV3X3, CONV1X1, MAXPOOL3X3

# spec section 1: the known hash and the known parameter counts
HASHED = (
    [
        [0, 1, 0, 1, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [INPUT, C3, C1, C1, C3, C1, OUTPUT],
)
README = (
    [
        [0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [INPUT, C3, C1, MP, C3, C3, OUTPUT],
)


# architectures by vertex count and by k (interior vertices feeding the output)
VERTEX_COUNTS = {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62010, 7: 359082}
SUBSPACE_SIZES = {0: 1, 1: 120933, 2: 201441, 3: 90782, 4: 10467}


@pytest.fixture(scope="module")
def small_catalogue():
    """Every unique architecture of at most 5 vertices (2,532), enumerated here."""
    return build_catalogue(max_vertices=5, workers=1)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def relabel(matrix, ops, where):
    """Vertex v moved to where[v]."""
    n = len(matrix)
    new = [[0] * n for _ in range(n)]
    new_ops = [None] * n
    for s in range(n):
        new_ops[where[s]] = ops[s]
        for d in range(n):
            if matrix[s][d]:
                new[where[s]][where[d]] = 1
    return new, new_ops


def order_preserving_relabellings(matrix, ops):
    n = len(matrix)
    for perm in itertools.permutations(range(1, n - 1)):
        where = (0, *perm, n - 1)
        m, o = relabel(matrix, ops, where)
        if all(m[s][d] == 0 for s in range(n) for d in range(s + 1)):
            yield m, o


# ---------------------------------------------------------------------------------------------
# hash and pruning


def test_registry_names_the_space():
    assert "nb101" in space_names() and SPACE.name == "nb101"
    assert NB101Space.ops_on == ("node",)
    assert set(NB101Space.dynamic_channels) == {"fixed", "shuffle", "interpolate", "disabled"}


def test_the_known_hash():
    import nasheur.spaces.nb101

    # spec section 8 names the call users make: nasheur.spaces.nb101.spec_hash(matrix, ops)
    assert nasheur.spaces.nb101.spec_hash(*HASHED) == "ff92c322c5d9d3d587d9c146a63d0807"
    assert SPACE.key(HASHED) == SPACE.unique_key(HASHED) == "ff92c322c5d9d3d587d9c146a63d0807"


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_numpy_matrices_hash_as_python_ints(dtype):
    assert spec_hash(np.array(HASHED[0], dtype=dtype), np.array(HASHED[1])) == spec_hash(*HASHED)


def test_the_hash_ignores_the_order_of_interior_vertices():
    rng = np.random.default_rng(0)
    for spec in [make_spec(*HASHED), make_spec(*README)] + [random_spec(rng) for _ in range(20)]:
        h = spec_hash(spec.matrix, spec.ops)
        relabellings = list(order_preserving_relabellings(spec.matrix, spec.ops))
        assert relabellings
        assert {spec_hash(m, o) for m, o in relabellings} == {h}
        # and every relabelling has the same canonical encoding
        assert {canonical(make_spec(m, o)) for m, o in relabellings} == {canonical(spec)}


def test_the_hash_tells_different_architectures_apart():
    m, ops = HASHED
    assert spec_hash(m, [INPUT, C3, C1, C1, C3, MP, OUTPUT]) != spec_hash(m, ops)
    moved = [row[:] for row in m]
    moved[0][3] = 0  # vertex 3 still has inputs 1 and 2
    assert spec_hash(moved, ops) != spec_hash(m, ops)


# vertex 2 has no input (unreachable), vertex 3 reaches nothing (dead end): pruned, the chain
# input -> conv3x3 -> output
DANGLING = (
    [
        [0, 1, 0, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    [INPUT, C3, C1, MP, OUTPUT],
)


def test_pruning_drops_vertices_off_every_path():
    m = DANGLING[0]
    spec = make_spec(*DANGLING)
    p = spec.pruned()
    assert p.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0)) and p.ops == (INPUT, C3, OUTPUT)
    assert spec_hash(m, spec.ops) == spec_hash(p.matrix, p.ops)
    assert p.pruned() is p


def test_pruning_before_counting_edges():
    # 7 vertices, 10 edges; two of them run into vertex 5, which reaches nothing
    m = [[0] * 7 for _ in range(7)]
    for s, d in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (0, 6), (1, 6), (2, 6), (0, 5), (1, 5)]:
        m[s][d] = 1
    spec = make_spec(m, [INPUT, C3, C3, C3, C3, C3, OUTPUT])
    assert spec.num_edges == 10 and spec.is_valid()
    assert spec.pruned().num_edges == 8 and spec.pruned().num_vertices == 6
    m[3][6] = m[0][2] = 1  # now 10 edges on paths
    assert not make_spec(m, spec.ops).is_valid()
    with pytest.raises(ValueError, match="10 edges"):
        spec_hash(m, spec.ops)


@pytest.mark.parametrize(
    ("matrix", "ops", "match"),
    [
        ([[0, 0, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT], "disconnected"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, C3, OUTPUT], "disconnected"),
        ([[0, 1], [1, 0]], [INPUT, OUTPUT], "upper triangular"),
        ([[0, 2], [0, 0]], [INPUT, OUTPUT], "0 or 1"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], "unknown NB101 ops"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, OUTPUT], "start with"),
        ([[0, 1], [0, 0]], [INPUT, C3, OUTPUT], "2 vertices but 3 ops"),
        # a fraction is not truncated into another graph (0.9 would drop the edge 0->2)
        ([[0, 1, 0.9], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT], "ints 0 or 1, not 0.9"),
        ([[0, 1], [0, 0]], None, "not an NB101 spec"),
        ([[0, 1], [0, 0]], 5, "not an NB101 spec"),
    ],
)
def test_invalid_specs_raise(matrix, ops, match):
    with pytest.raises(ValueError, match=match):
        spec_hash(matrix, ops)


def test_more_than_7_vertices_after_pruning_is_invalid():
    n = 8
    m = [[1 if d == s + 1 else 0 for d in range(n)] for s in range(n)]
    with pytest.raises(ValueError, match="8 vertices"):
        spec_hash(m, [INPUT, *[C3] * 6, OUTPUT])


def test_specs_are_immutable_values():
    spec = make_spec(*HASHED)
    with pytest.raises(AttributeError):
        spec.ops = ()  # type: ignore[misc]
    assert isinstance(spec.matrix, tuple) and isinstance(spec.matrix[0], tuple)
    assert spec == make_spec(*HASHED) and hash(spec) == hash(make_spec(*HASHED))


def test_keys_parse_back_to_the_canonical_encoding():
    key = SPACE.key(README)
    spec = SPACE.parse(key)
    assert spec == canonical(make_spec(*README)) and SPACE.key(spec) == key
    with pytest.raises(ValueError, match="not an NB101 key"):
        SPACE.validate_key("ff92c322")
    # the official hashes are lowercase hex: a key in capitals would match no architecture
    with pytest.raises(ValueError, match="not an NB101 key"):
        SPACE.validate_key("ff92c322c5d9d3d587d9c146a63d0807".upper())


def test_a_spec_given_to_the_space_is_pruned_before_it_is_keyed():
    """A spec object is pruned like a (matrix, ops) pair: vertex 2 has no input and vertex 3
    reaches nothing, so the space keys the chain input -> conv3x3 -> output, and a spec whose
    input and output are disconnected has no key."""
    m = DANGLING[0]
    spec = make_spec(*DANGLING)
    chain = make_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    assert SPACE.spec(spec) == chain
    assert SPACE.key(spec) == SPACE.key((m, spec.ops)) == spec_hash(chain.matrix, chain.ops)
    with pytest.raises(ValueError, match="disconnected"):
        SPACE.key(make_spec([[0, 0, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT]))


def test_a_keyed_hash_parses_without_the_enumeration(tmp_path, monkeypatch):
    """The class docstring: the enumeration is needed to parse a hash not keyed in this
    process; one keyed here parses back from memory (no cache file, no enumeration)."""
    import nasheur.spaces.nb101_catalogue as nb

    def enumerated(*args, **kwargs):
        raise AssertionError("parse enumerated the space")

    monkeypatch.setenv("NASHEUR_CACHE", str(tmp_path))  # no cache file there
    monkeypatch.setattr(nb, "build_catalogue", enumerated)
    monkeypatch.setattr(nb, "_KEYED", {})
    nb._catalogue_at.cache_clear()  # keys are remembered only while no catalogue is loaded
    try:
        key = SPACE.key(README)
        assert SPACE.parse(key) == canonical(make_spec(*README))
    finally:
        nb._catalogue_at.cache_clear()


# ---------------------------------------------------------------------------------------------
# widths and f_proxy


def widths_by_hand(matrix, c_out):
    """The NB101 rule, written again: an even split over the vertices feeding the output (the
    remainder to the first), then every other vertex the maximum of its successors."""
    n = len(matrix)
    w = [0] * n
    feed = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    for i, v in enumerate(feed):
        w[v] = c_out // len(feed) + (i < c_out % len(feed))
    for v in reversed(range(1, n - 1)):
        if v not in feed:
            w[v] = max(w[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return w[1:-1]


def expected_params(spec: NB101Spec, channels: int, layers: int, classes: int = 10) -> int:
    """Counted from the widths: convs k*k*c_in*c_out without bias, BN 2c, linear with bias."""
    n = spec.num_vertices
    total = 3 * 9 * channels + 2 * channels + 4 * channels * classes + classes
    c_in = channels
    for stack in range(3):
        c_out = channels * 2**stack
        for _ in range(layers):
            w = [c_in, *widths_by_hand(spec.matrix, c_out), c_out]
            for v in range(1, n):
                if spec.matrix[0][v]:
                    total += c_in * w[v] + 2 * w[v]
            for v in range(1, n - 1):
                k = {C3: 3, C1: 1}.get(spec.ops[v])
                if k:
                    total += k * k * w[v] * w[v] + 2 * w[v]
            c_in = c_out
    return total


def test_known_parameter_counts():
    assert n_params(SPACE.standalone(README)) == 2_694_282
    assert n_params(SPACE.standalone(HASHED)) == 6_315_018
    assert n_params(SPACE.standalone(SPACE.key(HASHED))) == 6_315_018  # by hash
    assert n_params(SPACE.standalone(make_spec(*HASHED))) == 6_315_018  # by spec


def test_parameter_counts_follow_the_width_rule():
    rng = np.random.default_rng(3)
    for spec in [make_spec(*README), *(random_spec(rng) for _ in range(8))]:
        assert n_params(SPACE.standalone(spec)) == expected_params(spec, 128, 3)
        assert n_params(SPACE.standalone(spec, channels=12, layers=1)) == expected_params(
            spec, 12, 1
        )


def test_width_rule_cases():
    m = README[0]
    assert vertex_widths(m, 64, 128) == [64, 32, 32, 32, 32, 32, 128]
    three = [
        [0, 1, 1, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    assert vertex_widths(three, 128, 128) == [128, 43, 43, 42, 128]  # remainder to the first
    chain = [[0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    # vertex 1 feeds the output and vertex 2: it keeps its own share
    assert vertex_widths(chain, 8, 9) == [8, 5, 4, 9]
    inner = [[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5]
    assert vertex_widths(inner, 8, 9) == [8, 5, 5, 4, 9]  # max of its successors
    with pytest.raises(ValueError, match="at least one channel"):
        vertex_widths(three, 2, 2)
    # an interior vertex and none feeding the output (an unpruned cell): no rule applies
    with pytest.raises(ValueError, match="has one feeding the output"):
        vertex_widths([[0, 1, 1], [0, 0, 0], [0, 0, 0]], 8, 8)
    assert vertex_widths([[0, 1], [0, 0]], 3, 8) == [3, 8]  # input -> output alone


def test_the_standalone_network_runs():
    import torch

    net = SPACE.standalone(HASHED, channels=8, layers=1)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    with pytest.raises(TypeError, match="unknown nb101 macro"):
        SPACE.standalone(HASHED, stacks=2)


def test_a_cell_of_input_to_output_alone_is_the_projection():
    """Spec section 1: with no interior vertex the output has nothing to concatenate, and is
    the input projected by conv1x1-BN-ReLU to c_out channels (official NB101: the V=2 graph),
    recomputed here with torch.nn.functional, batch statistics."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from nasheur.spaces.nb101_net import NB101Cell

    torch.manual_seed(0)
    spec = make_spec([[0, 1], [0, 0]], [INPUT, OUTPUT])
    cell = NB101Cell(spec, 3, 5).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0.0, 0.5)
    conv = next(m for m in cell.modules() if isinstance(m, nn.Conv2d))
    bn = next(m for m in cell.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    y = F.batch_norm(F.conv2d(x, conv.weight), None, None, bn.weight, bn.bias, training=True)
    torch.testing.assert_close(cell.train()(x), F.relu(y))
    net = SPACE.standalone(spec, channels=4, layers=1)  # 4 -> 4, 4 -> 8, 8 -> 16 channels
    assert n_params(net) == expected_params(spec, 4, 1)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_the_max_pools_of_a_cell_and_between_stacks():
    """Spec section 1: the vertex op maxpool3x3 (stride 1, TF 'same' padding, which never
    wins a max) and the 2x2 max-pool between stacks ('same': an odd side rounds up), against
    maxima over the windows clipped to the image, by brute force."""
    import torch

    from nasheur.spaces.nb101_net import downsample, max_pool_3x3

    x = torch.randn(2, 3, 5, 5) - 10  # all negative: a zero padding would show
    for pool, size, start, stride, out in (
        (max_pool_3x3(), 3, -1, 1, 5),
        (downsample(), 2, 0, 2, 3),
    ):
        expected = torch.empty(2, 3, out, out)
        for i in range(out):
            for j in range(out):
                r, c = start + stride * i, start + stride * j
                window = x[:, :, max(r, 0) : r + size, max(c, 0) : c + size]
                expected[:, :, i, j] = window.amax(dim=(2, 3))
        torch.testing.assert_close(pool(x), expected)


# ---------------------------------------------------------------------------------------------
# samplers


def test_random_nas_oversamples_architectures_with_many_encodings():
    rng = np.random.default_rng(0)
    counts = Counter(random_spec(rng) for _ in range(2000))
    assert all(s.is_valid() and s.pruned() is s for s in counts)
    bare = make_spec([[0, 1], [0, 0]], [INPUT, OUTPUT])  # input -> output: many encodings
    single = make_spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    # uniform sampling would see each about 2000 / 423,624 = 0.005 times
    assert counts[bare] > 120 and counts[single] > 20
    assert counts[bare] > 2 * counts[single]


def test_random_nas_draws_every_interior_op_uniformly():
    """Random-NAS draws each interior op uniformly among the 3, independently of the edges,
    so pruning (which looks at the edges only) keeps the kept vertices' ops uniform."""
    rng = np.random.default_rng(0)
    ops = Counter(op for _ in range(1000) for op in random_spec(rng).ops[1:-1])
    counts = [ops[op] for op in OPS]
    assert sum(counts) > 1000 and stats.chisquare(counts).pvalue > 1e-3, counts


def test_random_nas_vertex_counts_match_an_exhaustive_count():
    """Random-NAS (spec section 3): each of the 21 edges on with probability 1/2, pruned,
    rejected until valid. The chance of each pruned vertex count is counted here over all 2^21
    matrices (pruning written again: keep the vertices reachable from the input that reach the
    output; valid if the output is reached and at most 9 edges remain) and compared with
    10,000 draws. A sampler that never drew one of the edges (say vertex 5 -> output) would
    never keep 7 vertices (0.3% of the valid matrices)."""
    n = 7
    slots = [(s, d) for d in range(n) for s in range(d)]
    masks = np.arange(1 << len(slots), dtype=np.uint32)
    edge = {sd: ((masks >> b) & 1).astype(bool) for b, sd in enumerate(slots)}
    fwd = [np.ones(masks.shape, dtype=bool)]
    for d in range(1, n):
        fwd.append(np.logical_or.reduce([fwd[s] & edge[s, d] for s in range(d)]))
    bwd = [None] * (n - 1) + [np.ones(masks.shape, dtype=bool)]
    for s in range(n - 2, -1, -1):
        bwd[s] = np.logical_or.reduce([bwd[d] & edge[s, d] for d in range(s + 1, n)])
    keep = [f & b for f, b in zip(fwd, bwd, strict=True)]
    edges = sum((edge[s, d] & keep[s] & keep[d]).astype(np.int64) for s, d in slots)
    vertices = sum(k.astype(np.int64) for k in keep)
    valid = fwd[-1] & (edges <= 9)
    exact = np.bincount(vertices[valid], minlength=n + 1)[2:]
    rng = np.random.default_rng(0)
    drawn = Counter(random_spec(rng).num_vertices for _ in range(10_000))
    observed = [drawn[v] for v in range(2, n + 1)]
    expected = exact / exact.sum() * sum(observed)
    assert drawn[7] > 10, observed  # about 31 expected
    assert stats.chisquare(observed, expected).pvalue > 1e-3, (observed, expected.round())


def test_random_a_is_uniform_over_unique_architectures(small_catalogue):
    keep = small_catalogue.vertices <= 4  # the 91 architectures of at most 4 vertices
    cat = Catalogue(*(getattr(small_catalogue, f)[keep] for f in Catalogue.FIELDS))
    space = NB101Space(catalogue=cat)
    rng = np.random.default_rng(0)
    seen = Counter(space.sample_unique(rng) for _ in range(50 * len(cat)))
    archs = list(cat)
    assert len(archs) == 91
    assert set(seen) == set(archs)  # every architecture, and only those
    assert stats.chisquare([seen[a] for a in archs]).pvalue > 1e-3
    # Random-NAS on the same architectures is far from uniform (the V=2 graph alone ~10%)
    nas = Counter(random_spec(rng) for _ in range(1000))
    assert max(nas.values()) > 50


def test_the_unique_architectures_are_listed_without_hashing(monkeypatch):
    import nasheur.spaces.nb101_catalogue as nb

    def hashed(*args, **kwargs):
        raise AssertionError("the listing computed an MD5")

    nb.unique_archs.cache_clear()  # listed here, not taken from an earlier test's listing
    for name in ("md5_hex", "_md5_rows", "_fast_md5"):
        monkeypatch.setattr(nb, name, hashed)
    archs = SPACE.enumerate()  # one representative per isomorphism class, no MD5 at all
    monkeypatch.undo()
    assert len(archs) == SPACE.num_unique() == NUM_UNIQUE
    assert Counter(archs.vertices.tolist()) == VERTEX_COUNTS
    assert Counter(archs.output_inputs.tolist()) == SUBSPACE_SIZES
    rng = np.random.default_rng(0)
    for spec in (SPACE.sample_unique(rng) for _ in range(20)):
        assert spec.is_valid() and canonical(spec) == spec
    for k in SUBSPACES:
        sub = NB101SubSpace(k)
        assert len(sub.enumerate()) == SUBSPACE_SIZES[k]
        assert all(sub.sample_unique(rng).output_inputs() == k for _ in range(10))


def test_the_small_enumeration_matches_brute_force(small_catalogue):
    assert Counter(small_catalogue.vertices.tolist()) == {2: 1, 3: 6, 4: 84, 5: 2441}
    n = 5
    slots = [(s, d) for d in range(n) for s in range(d)]
    brute = set()
    for bits in range(1 << len(slots)):
        m = [[0] * n for _ in range(n)]
        for b, (s, d) in enumerate(slots):
            m[s][d] = (bits >> b) & 1
        spec = make_spec(m, [INPUT, C3, C3, C3, OUTPUT])
        if not spec.is_valid():
            continue
        p = spec.pruned()
        for labels in itertools.product(OPS, repeat=p.num_vertices - 2):
            brute.add(spec_hash(p.matrix, [INPUT, *labels, OUTPUT]))
    assert brute == set(small_catalogue.keys())
    # every entry is its own canonical encoding and parses back
    space = NB101Space(catalogue=small_catalogue)
    for i in range(0, len(small_catalogue), 97):
        spec = small_catalogue[i]
        assert canonical(spec) == spec and space.parse(small_catalogue.key(i)) == spec


def test_the_enumeration_is_in_the_generators_order(small_catalogue):
    """The entries are ascending by (vertex count, bitmask, op code), the hashed catalogue entry
    for entry the hash-free listing: a random subset draws indices in the listing and looks
    their hashes up in the catalogue."""
    from nasheur.spaces.nb101_catalogue import unique_archs

    cat = small_catalogue
    order = np.lexsort((cat.ops, cat.matrices, cat.vertices))
    assert (order == np.arange(len(cat))).all()
    listed = unique_archs(5)
    for name in ("vertices", "matrices", "ops"):
        assert (getattr(listed, name) == getattr(cat, name)).all(), name


def test_fairnas_gives_every_vertex_each_op_once():
    rng = np.random.default_rng(1)
    for _ in range(20):
        paths = SPACE.fair_paths(rng)
        assert len(paths) == 3 and len({p.matrix for p in paths}) == 1
        for v in range(1, paths[0].num_vertices - 1):
            assert sorted(p.ops[v] for p in paths) == sorted(OPS)
    again = SPACE.fair_paths(np.random.default_rng(1))
    first = SPACE.fair_paths(np.random.default_rng(1))
    assert again == first and again[0] is not first[0]


def test_fairnas_draws_the_order_of_the_ops_at_random():
    # a fixed order (path j takes op j everywhere) would make every path a single-op cell
    rng = np.random.default_rng(0)
    first = Counter()  # (vertex, op) of path 0
    single = deep = 0
    for _ in range(200):
        paths = SPACE.fair_paths(rng)
        interior = paths[0].num_vertices - 2
        first.update((v, paths[0].ops[v]) for v in range(1, interior + 1))
        if interior >= 3:  # a single-op path: probability 3 * (1/3)^k <= 1/9
            deep += len(paths)
            single += sum(len(set(p.ops[1:-1])) == 1 for p in paths)
    tested = 0
    for v in range(1, 6):
        counts = [first[v, op] for op in OPS]
        if sum(counts) >= 60:  # at least 20 expected per op
            tested += 1
            assert stats.chisquare(counts).pvalue > 1e-3, (v, counts)
    assert tested >= 3
    assert deep >= 150 and single / deep < 0.3, (single, deep)


# ---------------------------------------------------------------------------------------------
# sub-spaces (dynamic_channels=disabled)


def sub_cfg(*overrides):
    return compose_job(
        ["search_space=nb101", "dataset=synthetic", "ground_truth.path=/dev/null", *overrides]
    )


@pytest.mark.parametrize("k", SUBSPACES)
def test_a_subspace_has_fixed_widths_and_its_samplers_stay_inside(k, small_catalogue):
    cfg = sub_cfg("supernet.dynamic_channels=disabled", f"supernet.subspace={k}")
    space = SPACE.for_config(cfg)
    assert isinstance(space, NB101SubSpace) and space.subspace == k
    rng = np.random.default_rng(k)
    drawn = [space.sample(rng) for _ in range(30)]
    drawn += [p for _ in range(5) for p in space.fair_paths(rng)]
    for spec in drawn:
        assert spec.output_inputs() == k and space.contains(spec)
        # 12, 24, 48 channels are divisible by every k: one width for every vertex
        for c_out in (12, 24, 48):
            assert set(vertex_widths(spec.matrix, 7, c_out)[1:-1]) == {c_out // k}
        # 128 is not divisible by 3: the rule's remainder, at most one channel apart
        assert set(vertex_widths(spec.matrix, 64, 128)[1:-1]) <= {128 // k, -(-128 // k)}
        assert space.in_space(SPACE.key(spec))
    others = [s for s in (random_spec(rng) for _ in range(40)) if s.output_inputs() != k]
    assert others and not any(space.in_space(SPACE.key(s)) for s in others)
    small = NB101SubSpace(k, catalogue=small_catalogue)
    if (small_catalogue.output_inputs == k).any():
        assert all(small.sample_unique(rng).output_inputs() == k for _ in range(20))


def test_subspace_sizes_of_the_small_enumeration(small_catalogue):
    sizes = Counter(small_catalogue.output_inputs.tolist())
    assert sum(len(NB101SubSpace(k, small_catalogue).enumerate()) for k in SUBSPACES) == (
        len(small_catalogue) - sizes[0]
    )
    assert sizes[0] == 1  # input -> output alone: in no sub-space


def test_the_subspace_of_a_spec_is_decided_after_pruning():
    # vertex 2 feeds the output but has no input: pruned away, the cell has k = 1, not 2
    m = [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    spec = make_spec(m, [INPUT, C3, C1, OUTPUT])
    assert NB101SubSpace(1).contains(spec) and not NB101SubSpace(2).contains(spec)
    # input -> output alone (k = 0) belongs to no sub-space
    bare = make_spec([[0, 1], [0, 0]], [INPUT, OUTPUT])
    assert NB101Space.subspace_of(bare) is None
    assert not any(NB101SubSpace(k).contains(bare) for k in SUBSPACES)
    assert NB101Space.subspace_of(make_spec(*README)) == 4  # vertices 1, 2, 3, 5 feed the output


def test_subspace_membership_by_hash_counts_the_feeders(small_catalogue, monkeypatch):
    """in_space of a key not met in this process looks it up in the catalogue: sub-space k
    holds exactly the entries with k interior vertices wired to the output, counted here."""
    import nasheur.spaces.nb101_catalogue as nb

    monkeypatch.setattr(nb, "_KEYED", {})  # keys met by other tests would skip the lookup
    feeders = []
    for spec in small_catalogue:
        n = spec.num_vertices
        feeders.append(sum(spec.matrix[v][n - 1] for v in range(1, n - 1)))
    keys = small_catalogue.keys()
    for k in SUBSPACES:
        sub = NB101SubSpace(k, catalogue=small_catalogue)
        assert [sub.in_space(key) for key in keys] == [f == k for f in feeders]


def test_for_config_without_disabled_is_the_whole_space():
    assert SPACE.for_config(sub_cfg("supernet.dynamic_channels=fixed")) is SPACE


# ---------------------------------------------------------------------------------------------
# Table 7's baseline: a random subset as large as a sub-space (supernet.random_subspace)


def subset_cfg(k, *overrides):
    return sub_cfg("supernet.random_subspace=true", f"supernet.subspace={k}", *overrides)


def test_a_random_subset_is_as_large_as_its_subspace_and_mixes_every_width():
    subset = SPACE.for_config(subset_cfg(4))
    assert isinstance(subset, NB101RandomSubset)
    members = subset.enumerate()
    assert len(members) == SUBSPACE_SIZES[4] == 10467
    assert len(set(subset.indices.tolist())) == len(members)
    # drawn uniformly from the whole space: each sub-space's share is hypergeometric around
    # its share of the space (5 standard deviations)
    ks = Counter(SPACE.enumerate().output_inputs[subset.indices].tolist())
    n, total = len(members), NUM_UNIQUE
    for k, size in SUBSPACE_SIZES.items():
        mean = n * size / total
        sd = np.sqrt(n * (size / total) * (1 - size / total) * (total - n) / (total - 1))
        assert abs(ks.get(k, 0) - mean) <= 5 * sd + 1, (k, ks.get(k, 0), mean)
    assert {1, 2, 3, 4} <= set(ks)
    # the seed draws the subset: the same seed the same one, another seed another
    again = SPACE.for_config(subset_cfg(4))
    other = SPACE.for_config(subset_cfg(4, "seed=1"))
    assert np.array_equal(again.indices, subset.indices)
    assert not np.array_equal(other.indices, subset.indices)
    assert len(SPACE.for_config(subset_cfg(1)).enumerate()) == SUBSPACE_SIZES[1]


def test_the_random_subsets_samplers_stay_inside():
    subset = SPACE.for_config(subset_cfg(3))
    rng = np.random.default_rng(0)
    for spec in [subset.sample_unique(rng) for _ in range(20)]:
        assert subset.contains(spec) and subset.in_space(SPACE.key(spec))
    # Random-NAS inside is the full space's Random-NAS with the non-members dropped
    drawn = [subset.sample(np.random.default_rng(5)) for _ in range(1)]
    rng = np.random.default_rng(5)
    first = next(s for s in iter(lambda: random_spec(rng), None) if subset.contains(s))
    assert drawn == [first]
    rng = np.random.default_rng(6)
    inside = [subset.sample(rng) for _ in range(15)]
    assert all(subset.contains(s) and subset.in_space(SPACE.key(s)) for s in inside)
    outside = [s for s in (random_spec(rng) for _ in range(60)) if not subset.contains(s)]
    assert outside and not any(subset.in_space(SPACE.key(s)) for s in outside)
    with pytest.raises(ValueError, match="FairNAS"):
        subset.fair_paths(rng)


def test_random_subset_membership_by_hash_and_by_spec_agree(small_catalogue):
    for k in SUBSPACES:
        subset = NB101RandomSubset(k, np.random.default_rng(k), catalogue=small_catalogue)
        chosen = set(subset.indices.tolist())
        assert len(chosen) == int((small_catalogue.output_inputs == k).sum())
        for i in range(len(small_catalogue)):
            assert subset.contains(small_catalogue[i]) == (i in chosen)
            assert (small_catalogue.key(i).encode() in subset._members) == (i in chosen)


def test_a_random_subset_job_also_evaluates_its_subspace():
    subset = SPACE.for_config(subset_cfg(2))
    (extra,) = SPACE.extra_pools(subset).values()
    assert isinstance(extra, NB101SubSpace) and extra.subspace == 2
    assert SPACE.extra_pools(SPACE) == {}
    disabled = SPACE.for_config(
        sub_cfg("supernet.dynamic_channels=disabled", "supernet.subspace=3")
    )
    assert SPACE.extra_pools(disabled) == {}


def test_each_sub_space_size_draws_its_own_subset():
    # one seed, two sizes: independent draws, not one nested in the other
    small, large = (SPACE.for_config(subset_cfg(k)) for k in (4, 3))
    inside = np.isin(small.indices, large.indices).mean()
    expected = len(large.indices) / NUM_UNIQUE  # about 21% for independent draws
    assert abs(inside - expected) < 0.05


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["supernet.dynamic_channels=disabled"], r"supernet.subspace=null .* 1, 2, 3, 4"),
        (["supernet.dynamic_channels=disabled", "supernet.subspace=5"], r"subspace=5.*1, 2, 3, 4"),
        (["supernet.dynamic_channels=disabled", "supernet.subspace=0"], "supernet.subspace=0"),
        (["supernet.dynamic_channels=fixed", "supernet.subspace=2"], "supernet.subspace=2 needs"),
        (["supernet.random_subspace=true"], r"subspace=null .*random_subspace=true.* 1, 2, 3, 4"),
        (
            ["supernet.random_subspace=true", "supernet.subspace=5"],
            r"subspace=5 .*random_subspace=true",
        ),
        (
            [
                "supernet.dynamic_channels=disabled",
                "supernet.subspace=2",
                "supernet.random_subspace=true",
            ],
            "random_subspace=true needs dynamic channels",
        ),
        (
            ["supernet.random_subspace=true", "supernet.subspace=2", "sampler=fairnas"],
            "sampler=fairnas cannot stay inside a random subset",
        ),
        (["fidelity.channels=3"], "fidelity.channels=3"),
        (["supernet.ops_on=edge"], "supernet.ops_on"),
    ],
)
def test_bad_nb101_configs_fail_validation(overrides, match, tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("key,accuracy\n")
    cfg = compose_job(["search_space=nb101", f"ground_truth.path={gt}", *overrides])
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_a_subspace_needs_as_many_channels_as_its_k(tmp_path):
    """dynamic_channels=disabled splits a cell's channels over the k vertices of its own
    sub-space only (C >= k: sub-space 2 trains with C = 2); dynamic channels serve every k up
    to 4, so they need C >= 4."""
    gt = tmp_path / "gt.csv"
    gt.write_text("key,accuracy\n")
    base = ["search_space=nb101", f"ground_truth.path={gt}"]
    disabled = [*base, "supernet.dynamic_channels=disabled", "supernet.subspace=2"]
    validate(compose_job([*disabled, "fidelity.channels=2"]))
    with pytest.raises(ConfigError, match=r"fidelity\.channels=1 is out of range"):
        validate(compose_job([*disabled, "fidelity.channels=1"]))
    validate(compose_job([*base, "fidelity.channels=4"]))


def test_the_paper_defaults():
    cfg = sub_cfg()
    s, f, p = cfg.supernet, cfg.fidelity, cfg.protocol
    assert (s.ops_on.value, s.dynamic_channels.value, s.subspace) == ("node", "interpolate", None)
    assert (s.ofa_kernel, s.wsbn, s.path_dropout, s.global_dropout) == (False, False, 0, 0)
    assert (f.layers, f.channels, f.batch_size, f.train_portion) == (3, 128, 256, 0.75)
    assert (p.lr, p.epochs, p.weight_decay, p.bn_track, p.bn_affine) == (
        0.025,
        400,
        1e-3,
        False,
        True,
    )
    assert (p.momentum, p.grad_clip, p.lr_min) == (0.9, 5.0, 0.0)


# ---------------------------------------------------------------------------------------------
# the catalogue cache: damage is rebuilt, never trusted (over the small enumeration, standing in
# for the full one: NUM_UNIQUE and build_catalogue are replaced)


def _swap(arr: np.ndarray, i: int, j: int) -> np.ndarray:
    arr = arr.copy()
    arr[[i, j]] = arr[[j, i]]
    return arr


def _swapped(cat: Catalogue, i: int, j: int) -> Catalogue:
    return Catalogue(cat.vertices, cat.matrices, cat.ops, _swap(cat.hashes, i, j))


@pytest.fixture
def small_cache(tmp_path, monkeypatch, small_catalogue):
    """A good cache of the small enumeration in $NASHEUR_CACHE; yields its path and the list
    of catalogues built since (a rebuild appends one)."""
    import nasheur.spaces.nb101_catalogue as nb

    built = []

    def build(*args, **kwargs):
        built.append(small_catalogue)
        return small_catalogue

    monkeypatch.setenv("NASHEUR_CACHE", str(tmp_path))
    monkeypatch.setattr(nb, "NUM_UNIQUE", len(small_catalogue))
    monkeypatch.setattr(nb, "build_catalogue", build)
    monkeypatch.setattr(nb, "_KEYED", {})  # keys met by other tests would bypass the cache
    nb._catalogue_at.cache_clear()
    path = tmp_path / nb.CACHE_FILE
    save_catalogue(small_catalogue, path)
    yield path, built
    nb._catalogue_at.cache_clear()


def _assert_is(cat, want):
    for name in Catalogue.FIELDS:
        assert (getattr(cat, name) == getattr(want, name)).all(), name


def test_a_good_nb101_cache_is_read_not_rebuilt(small_cache, small_catalogue):
    import nasheur.spaces.nb101_catalogue as nb

    _, built = small_cache
    _assert_is(nb.catalogue(), small_catalogue)
    assert built == []


def test_a_truncated_or_byte_flipped_nb101_cache_is_rebuilt(small_cache, small_catalogue, caplog):
    import nasheur.spaces.nb101_catalogue as nb

    path, built = small_cache
    good = path.read_bytes()
    damaged = [good[:n] for n in (0, 100, len(good) // 2, len(good) - 1)]
    # a byte flipped in each member's zip header (compression method, CRC, name length), in
    # its compressed .npy header and data, and in the zip directory
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    at = [len(good) - 10, len(good) - 40]
    for m in members:
        data = m.header_offset + 30 + len(m.filename)
        at += [m.header_offset + k for k in (8, 14, 26)]
        at += [data, data + 20, data + m.compress_size // 2, data + m.compress_size - 1]
    damaged += [good[:i] + bytes([good[i] ^ 0xFF]) + good[i + 1 :] for i in at]
    for data in damaged:
        path.write_bytes(data)
        nb._catalogue_at.cache_clear()
        _assert_is(nb.catalogue(), small_catalogue)  # read intact, or rebuilt: never raises
    # the truncated ones and most flips (zip ignores some fields, e.g. a local header's CRC)
    assert 20 < len(built) < len(damaged)
    assert "is unreadable or damaged" in caplog.text and "enumerating again" in caplog.text
    assert path.read_bytes() == good  # rewritten


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a.update(hashes=_swap(a["hashes"], 0, 1)),  # the audit's swap
        lambda a: a.update(hashes=_swap(a["hashes"], 1000, 2531)),
        lambda a: a.update(ops=a["ops"][::-1].copy()),
        lambda a: a.update(hashes=a["hashes"][:-1]),
        lambda a: a.update(matrices=a["matrices"].astype(np.int64)),
        lambda a: a.update(hashes=a["hashes"].astype("S33")),
        lambda a: a.update(vertices=np.full_like(a["vertices"], 9)),
        lambda a: a.update(format=np.array("1")),
        lambda a: a.pop("ops"),
    ],
    ids=[
        "hashes 0 and 1 swapped",
        "hashes 1000 and the last swapped",
        "ops reversed",
        "one hash short",
        "matrices as int64",
        "hashes as S33",
        "9 vertices",
        "format as text",
        "no ops",
    ],
)
def test_an_nb101_cache_that_fails_its_checks_is_rebuilt(
    small_cache, small_catalogue, caplog, change
):
    import nasheur.spaces.nb101_catalogue as nb

    path, built = small_cache
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez_compressed(path, **arrays)
    _assert_is(nb.catalogue(), small_catalogue)
    assert len(built) == 1
    assert "is unreadable or damaged" in caplog.text
    _assert_is(read_catalogue(path), small_catalogue)  # rewritten (NUM_UNIQUE is the small one)


def test_parse_never_answers_with_another_architecture(small_cache, small_catalogue, monkeypatch):
    """Two entries swapped where no spot check looks: the cache loads, but parse notices."""
    import nasheur.spaces.nb101_catalogue as nb

    path, built = small_cache
    monkeypatch.setattr(nb, "_SPOT_RANDOM", 0)
    unchecked = sorted(
        set(range(len(small_catalogue))) - set(nb._spot_indices(len(small_catalogue)))
    )
    i, j = unchecked[len(unchecked) // 3], unchecked[2 * len(unchecked) // 3]
    bad = _swapped(small_catalogue, i, j)
    save_catalogue(bad, path)
    assert len(nb.catalogue().hashes) == len(small_catalogue) and built == []  # not caught yet
    key = small_catalogue.key(i)
    spec = NB101Space().parse(key)
    assert spec == small_catalogue[i] and spec_hash(spec.matrix, spec.ops) == key
    assert len(built) == 1  # rebuilt once, and rewritten
    _assert_is(read_catalogue(path), small_catalogue)
    # an enumeration that is itself wrong: refused, never answered
    nb._catalogue_at.cache_clear()
    save_catalogue(bad, path)
    monkeypatch.setattr(nb, "build_catalogue", lambda *a, **k: bad)
    with pytest.raises(RuntimeError, match=f"the entry of {key} is another architecture"):
        NB101Space().parse(key)
    # a catalogue given to the space is checked the same way
    with pytest.raises(ValueError, match=f"maps {key} to another architecture"):
        NB101Space(catalogue=bad).parse(key)
    assert NB101Space(catalogue=bad).parse(small_catalogue.key(0)) == small_catalogue[0]


# ---------------------------------------------------------------------------------------------
# the full enumeration


@pytest.mark.slow
def test_the_full_enumeration(tmp_path, monkeypatch):
    import nasheur.spaces.nb101_catalogue as nb101

    monkeypatch.setenv("NASHEUR_CACHE", str(tmp_path))
    nb101._catalogue_at.cache_clear()
    try:
        start = time.perf_counter()
        cat = nb101.catalogue()
        built = time.perf_counter() - start
        path = tmp_path / nb101.CACHE_FILE
        print(f"enumeration {built:.1f} s, cache {path.stat().st_size / 1e6:.1f} MB")
        assert len(cat) == NUM_UNIQUE == len(set(cat.hashes.tolist()))
        assert Counter(cat.vertices.tolist()) == VERTEX_COUNTS
        assert Counter(cat.output_inputs.tolist()) == SUBSPACE_SIZES
        # the cache reads back the same, and answers lookups
        again = read_catalogue(path)
        assert (again.hashes == cat.hashes).all() and (again.matrices == cat.matrices).all()
        key = "ff92c322c5d9d3d587d9c146a63d0807"
        i = cat.find(key)
        spec = cat[i]
        assert spec_hash(spec.matrix, spec.ops) == key
        assert canonical(make_spec(*HASHED)) == spec
        rng = np.random.default_rng(0)
        for j in rng.choice(len(cat), 200, replace=False):
            s = cat[int(j)]
            assert spec_hash(s.matrix, s.ops) == cat.key(int(j)) and canonical(s) == s
        space = NB101Space()
        assert space.num_unique() == NUM_UNIQUE
        draws = [space.key(space.sample_unique(rng)) for _ in range(50)]
        assert len(set(draws)) == 50
        sub = NB101SubSpace(4)
        assert len(sub.enumerate()) == 10467 and sub.in_space(SPACE.key(sub.enumerate()[0]))
        # the hash-free listing is the catalogue, entry for entry
        listed = nb101.unique_archs()
        assert (listed.matrices == cat.matrices).all() and (listed.ops == cat.ops).all()
        # a saved copy round-trips through the atomic writer
        save_catalogue(cat, tmp_path / "copy.npz")
        assert (read_catalogue(tmp_path / "copy.npz").ops == cat.ops).all()
    finally:
        nb101._catalogue_at.cache_clear()


def test_a_mapping_is_refused_with_what_to_pass_instead():
    # a two-key dict unpacks into its keys' names: 'matrix' then failed as int('m')
    matrix, ops = HASHED
    with pytest.raises(ValueError, match=r"not a mapping \(keys \['matrix', 'ops'\]\)"):
        SPACE.spec({"matrix": matrix, "ops": ops})
    assert SPACE.key((matrix, ops)) == "ff92c322c5d9d3d587d9c146a63d0807"
