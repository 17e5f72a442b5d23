"""Crafted numpy pickles are refused while loading; genuine numpy pickles still load; damaged
NAS-Bench-201 files give errors that name the file and the entry.

The malicious pickles are written here by hand: a ``_Reduce`` object makes the pickler emit a
chosen callable, arguments and BUILD state (the same opcodes numpy writes, with a state numpy
never writes), and raw opcodes are appended where a pickler cannot produce them.
"""

from __future__ import annotations

import bz2
import collections
import io
import json
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

from nasheur.groundtruth import GroundTruthError
from nasheur.groundtruth.nb201 import load_pbz2, load_pth, read_nats_folder, read_nats_pbz2
from nasheur.safe_pickle import (
    LATIN1_BYTES_GLOBALS,
    NUMPY_ARRAY_GLOBALS,
    PickleMemoryError,
    UnpickledArray,
    UnsafePickleError,
    safe_load,
    zip_inflation,
)
from tests.test_groundtruth_loaders import ARCHS, nats_infos, nb201_dict, write_pbz2

try:  # numpy >= 2
    from numpy._core import multiarray, numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray, numeric

ALLOWED = {**NUMPY_ARRAY_GLOBALS, **LATIN1_BYTES_GLOBALS}
FAKE_POINTER = struct.pack("<Q", 0x4141414141414141)

# numpy's dtype state: (version, byte order, subarray, names, fields, elsize, alignment, flags)
OBJECT_FLAGS = 63  # what numpy sets for an object dtype (refcounted items, list pickle, ...)


class _Reduce:
    """Pickles as ``reduce_value`` (callable, args[, state]): numpy's opcodes, chosen contents."""

    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


def crafted_dtype(spec: str, *, byteorder="<", subarray=None, names=None, fields=None, flags=0):
    """``numpy.dtype(spec, False, True)`` then BUILD with the given state."""
    state = (3, byteorder, subarray, names, fields, -1, -1, flags)
    return _Reduce(np.dtype, (spec, False, True), state)


def frombuffer(raw: bytes, dtype) -> _Reduce:  # how protocol 5 writes an array
    return _Reduce(numeric._frombuffer, (raw, dtype, (1,), "C"))


def reconstructed(raw, dtype, shape=(1,)) -> _Reduce:  # how protocol <= 4 writes an array
    return _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


def load(data: bytes, source: str = "crafted.pkl"):
    return safe_load(io.BytesIO(data), ALLOWED, source=source)


# object dtypes: an object array's items are pointers, here pointing at 0x4141414141414141
OBJECT_CLEARED = crafted_dtype("O8", byteorder="|", flags=0)  # flags cleared: numpy copies bytes
F8_AS_OBJECT = crafted_dtype("f8", flags=OBJECT_FLAGS)  # a float dtype claiming object items
F8_SUBARRAY = crafted_dtype("f8", subarray=(np.dtype("<f8"), (100_000,)))  # reads 800 kB from 8
F8_FAR_FIELD = crafted_dtype("f8", names=("a",), fields={"a": (np.dtype("<f8"), 1 << 30)})
VOID_FAR_FIELD = crafted_dtype(
    "V8", byteorder="|", names=("a",), fields={"a": (np.dtype("<f8"), 1 << 30)}
)

CRAFTED = {
    "object dtype, _frombuffer": frombuffer(FAKE_POINTER, OBJECT_CLEARED),
    "object dtype, ndarray BUILD": reconstructed(FAKE_POINTER, OBJECT_CLEARED),
    "object dtype, list payload": reconstructed([1], crafted_dtype("O8", byteorder="|", flags=63)),
    "float dtype with object flags, _frombuffer": frombuffer(FAKE_POINTER, F8_AS_OBJECT),
    "float dtype with object flags, ndarray BUILD": reconstructed(FAKE_POINTER, F8_AS_OBJECT),
    "float dtype with object flags, scalar": _Reduce(multiarray.scalar, (F8_AS_OBJECT, b"\0" * 8)),
    "float dtype with a subarray, _frombuffer": frombuffer(b"\0" * 8, F8_SUBARRAY),
    "float dtype with a subarray, ndarray BUILD": reconstructed(b"\0" * 8, F8_SUBARRAY),
    "float dtype with a far field, left in the data": {"dtype": F8_FAR_FIELD},
    "structured dtype with a far field": frombuffer(b"\0" * 8, VOID_FAR_FIELD),
    "plain dtype, list payload (object array)": reconstructed([1.0], crafted_dtype("f8")),
    "numpy.ndarray called directly": _Reduce(np.ndarray, ((4,), crafted_dtype("f8"))),
    "_reconstruct of another type": _Reduce(multiarray._reconstruct, (np.dtype, (0,), b"b")),
}


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_numpy_pickles_are_refused_while_loading(name, protocol):
    data = pickle.dumps([1.5, CRAFTED[name]], protocol=protocol)
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing"):
        load(data)


def test_crafted_pickles_crash_nothing_in_a_fresh_interpreter():
    """The audit's three payloads, which crashed numpy (exit -11) before being refused."""
    payloads = [
        _Reduce(multiarray.scalar, (OBJECT_CLEARED, FAKE_POINTER)),  # crashed inside the load
        frombuffer(FAKE_POINTER, OBJECT_CLEARED),
        reconstructed(FAKE_POINTER, OBJECT_CLEARED),
    ]
    script = textwrap.dedent(
        """
        import io, sys
        from nasheur.safe_pickle import NUMPY_ARRAY_GLOBALS, UnsafePickleError, safe_load
        for data in sys.stdin.buffer.read().split(b"--next--"):
            try:
                print(repr(safe_load(io.BytesIO(data), NUMPY_ARRAY_GLOBALS, source="x")))
            except UnsafePickleError:
                print("refused")
        """
    )
    data = b"--next--".join(pickle.dumps(p, protocol=2) for p in payloads)
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["refused"] * 3


# arrays whose elements no bytes of the file hold: a length of 10**18 from a few bytes
S0_STATE = (3, "|", None, None, None, 0, 1, 0)  # numpy's own state for dtype("S0")
UNBACKED = {
    "S0 array of 10**18 items": reconstructed(b"", np.dtype("S0"), shape=(10**18,)),
    "U0 array of 10**9 items": reconstructed(b"", np.dtype("U0"), shape=(10**9,)),
    "S0 array, _frombuffer": _Reduce(numeric._frombuffer, (b"", np.dtype("S0"), (10**18,), "C")),
    "S5 dtype whose BUILD makes it S0": reconstructed(
        b"", _Reduce(np.dtype, ("S5", False, True), S0_STATE), shape=(10**18,)
    ),
    "S0 scalar": _Reduce(multiarray.scalar, (np.dtype("S0"), b"")),
    "S5 dtype whose BUILD makes it S0, scalar": _Reduce(  # no array shape to check there
        multiarray.scalar, (_Reduce(np.dtype, ("S5", False, True), S0_STATE), b"")
    ),
    "empty f8 array of 10**18 rows": reconstructed(b"", np.dtype("f8"), shape=(10**18, 0)),
    "empty f8 array of 10**18 rows, _frombuffer": _Reduce(
        numeric._frombuffer, (b"", np.dtype("f8"), (10**18, 0), "C")
    ),
    "f8 array of 2 items, 8 bytes, _frombuffer": _Reduce(
        numeric._frombuffer, (b"\0" * 8, np.dtype("f8"), (2,), "C")
    ),
}


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", list(UNBACKED))
def test_arrays_not_backed_by_their_bytes_are_refused(name, protocol):
    data = pickle.dumps([UNBACKED[name]], protocol=protocol)
    assert len(data) < 300
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing .*(size 0|bytes|empty)"):
        load(data)


def test_a_tiny_nats_file_with_an_endless_array_is_refused_not_iterated(tmp_path):
    """The audit's 166-byte file: set() over an S0 array of 10**18 items ran forever."""
    endless = reconstructed(b"", np.dtype("S0"), shape=(10**18,))
    path = _pbz2(tmp_path, {"meta_archs": _Reduce(set, (endless,))}, protocol=2)
    done = subprocess.run(
        [sys.executable, "-m", "nasheur.groundtruth", "convert", str(path), "--out",
         str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{path}: refusing the numpy dtype 'S0'" in done.stderr
    assert "Traceback" not in done.stderr


def _memo_index_of_first_dtype(data: bytes) -> int:
    """The memo slot numpy.dtype's result is stored in (the BINPUT after its REDUCE)."""
    seen_global = seen_reduce = False
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL" and arg == "numpy dtype":
            seen_global = True
        elif seen_global and op.name == "REDUCE":
            seen_reduce = True
        elif seen_reduce and op.name == "BINPUT":
            return arg
    raise AssertionError("no memoized dtype")


def test_dtype_altered_after_its_array_was_made_is_refused():
    dtype = crafted_dtype("f8")
    data = pickle.dumps([frombuffer(FAKE_POINTER, dtype), dtype], protocol=2)
    assert isinstance(load(data)[0], np.ndarray)  # genuine so far
    # then: GET that dtype, BUILD it into a float dtype with object items, POP
    evil_state = pickle.dumps((3, "<", None, None, None, -1, -1, OBJECT_FLAGS), protocol=2)[2:-1]
    get = b"h" + bytes([_memo_index_of_first_dtype(data)])
    tampered = data[:-1] + get + evil_state + b"b0."
    with pytest.raises(UnsafePickleError, match=r"crafted\.pkl: refusing the numpy dtype"):
        load(tampered)


def _piece(obj) -> bytes:
    """`obj`'s opcodes at protocol 2, without the header and STOP: to splice by hand."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _numeric_module() -> bytes:
    return numeric.__name__.encode()


def _second_build_payloads() -> dict[str, bytes]:
    """Arrays BUILT a second time, which numpy's own unpickling allows (red team, 2026-12-02):
    a plain dtype swapped for an object one under an array made by _frombuffer (SIGSEGV), and
    an array whose data a _frombuffer view reads, freed by a second BUILD (use after free)."""
    n = 1 << 16
    made = _piece(frombuffer(b"\0" * 8, np.dtype("f8")))
    swap = _piece((1, (1,), crafted_dtype("f8", flags=1), False, b"A" * 8))
    array = _piece(reconstructed(b"A" * n, np.dtype("u1"), shape=(n,)))
    view = (
        b"c"
        + _numeric_module()
        + b"\n_frombuffer\n(h\xc8"
        + _piece(np.dtype("u1"))
        + _piece((n,))
        + _piece("C")
        + b"tR"
    )
    again = _piece((1, (8,), np.dtype("u1"), False, b"B" * 8))
    return {
        "BUILD on an array made by _frombuffer": b"\x80\x02" + made + swap + b"b.",
        "_frombuffer of an array, then BUILD on it": (
            b"\x80\x02" + array + b"q\xc80" + view + b"h\xc8" + again + b"b0."
        ),
    }


@pytest.mark.parametrize("name", list(_second_build_payloads()))
def test_an_array_is_built_once_and_views_only_bytes(name):
    data = _second_build_payloads()[name]
    # in a fresh interpreter first: these exited -11 before, which here would end pytest
    script = textwrap.dedent(
        """
        import io, sys
        from nasheur.safe_pickle import NUMPY_ARRAY_GLOBALS, UnsafePickleError, safe_load
        try:
            safe_load(io.BytesIO(sys.stdin.buffer.read()), NUMPY_ARRAY_GLOBALS, source="x")
        except UnsafePickleError:
            print("refused")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], input=data, capture_output=True)
    assert done.returncode == 0 and done.stdout.decode().split() == ["refused"], done.stderr
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing"):
        load(data)


def test_stand_ins_cannot_be_modified_by_build():
    encode = LATIN1_BYTES_GLOBALS[("_codecs", "encode")]
    # _codecs.encode, then BUILD({"__defaults__": ("latin1", "ignore")}) on it
    state = pickle.dumps({"__defaults__": ("latin1", "ignore")}, protocol=2)[2:-1]
    data = b"\x80\x02c_codecs\nencode\n" + state + b"b."
    with pytest.raises(UnsafePickleError, match=r"crafted\.pkl: refusing to modify"):
        load(data)
    with pytest.raises(UnsafePickleError):
        encode("é", "utf-8")  # still the restricted stand-in, defaults untouched
    assert encode("é", "latin1") == b"\xe9"


# ----------------------------------------------------------------------------- genuine data


def genuine_numpy() -> dict:
    return {
        "f8": np.linspace(0.0, 1.0, 12).reshape(3, 4),
        "f8_fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "i8": np.arange(-5, 5, dtype=np.int64),
        ">i4": np.arange(4, dtype=">i4"),
        "u1": np.arange(250, 256, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "c16": np.array([1 + 2j, -3j]),
        "S": np.array([b"ab", b"cde"]),
        "U": np.array(["ab", "héllo"]),
        "0d": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "empty rows": np.zeros((7, 0), dtype=np.float64),
        "scalars": [np.float64(0.125), np.int64(-7), np.bool_(True), np.str_("x"), np.uint8(3)],
        "dtypes": [np.dtype("int16"), np.dtype(">f8"), np.dtype("S5"), np.dtype("U3")],
    }


def _assert_same(got, want):
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.flags.f_contiguous == want.flags.f_contiguous
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert type(g) is type(w) and g == w
    else:
        raise AssertionError(type(want))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_genuine_numpy_pickles_load_equal(protocol):
    data = pickle.dumps(genuine_numpy(), protocol=protocol)
    want = pickle.loads(data)  # numpy's own (trusting) unpickling of our own data
    spellings = [data]
    if protocol == 2:  # numpy 1.x's spelling of the same globals
        spellings.append(data.replace(b"numpy._core.", b"numpy.core."))
    for spelling in spellings:
        got = load(spelling)
        assert got.keys() == want.keys()
        for key in want:
            _assert_same(got[key], want[key])
    # arrays come back as a checked subclass (one BUILD at most) that re-pickles plainly
    kinds = {type(got[k]) for k in want if isinstance(want[k], np.ndarray)}
    assert kinds == {UnpickledArray}
    assert type(pickle.loads(pickle.dumps(got["f8"]))) is np.ndarray


def test_pth_with_tensors_and_numpy_goes_through_torch_and_checks_numpy(tmp_path):
    import torch

    good = tmp_path / "good.pth"
    torch.save({"t": torch.ones(2), **genuine_numpy()}, good)  # a tensor: torch.load's path
    want = pickle.loads(pickle.dumps(genuine_numpy(), protocol=2))  # numpy's own unpickling
    got = load_pth(good)
    assert torch.equal(got["t"], torch.ones(2))
    for key in want:
        _assert_same(got[key], want[key])

    for name, crafted in [
        ("object", frombuffer(FAKE_POINTER, OBJECT_CLEARED)),
        ("flags", reconstructed(FAKE_POINTER, F8_AS_OBJECT)),
        ("left", {"dtype": F8_FAR_FIELD}),  # a dtype BUILD altered, returned as data
    ]:
        path = tmp_path / f"evil-{name}.pth"
        torch.save({"t": torch.ones(2), "x": crafted}, path)
        with pytest.raises(UnsafePickleError, match=rf"evil-{name}\.pth.*refusing"):
            load_pth(path)


def _deflated_copy(path, to):
    """`path`'s zip entries, deflated: what torch.save never writes, and torch.load inflates."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(to, "w", zipfile.ZIP_DEFLATED) as dst:
        for entry in src.infolist():
            dst.writestr(entry.filename, src.read(entry))
    return to


def test_zip_entries_that_would_inflate_are_refused_before_torch_reads_them(tmp_path):
    # a zip bomb: a few MB of deflated zeros that torch.load would inflate to gigabytes
    import torch

    from nasheur.training import UnreadableCheckpoint, load_checkpoint

    good = tmp_path / "good.pth"
    torch.save({"format": 1, "config_hash": "x", "epoch": 1, "t": torch.zeros(4096)}, good)
    assert zip_inflation(good) is None
    packed = _deflated_copy(good, tmp_path / "packed.pth")
    assert torch.load(packed, weights_only=True)["epoch"] == 1  # torch itself would read it
    with pytest.raises(UnsafePickleError, match=r"packed\.pth: refused.*compressed entries"):
        load_pth(packed)
    with pytest.raises(UnreadableCheckpoint, match=r"packed\.pth: refused.*compressed entries"):
        load_checkpoint(packed, device=torch.device("cpu"), config_hash="x")
    # plain data, which the allow-list reads without torch.load: refused before it too
    plain = tmp_path / "plain.pth"
    torch.save(nb201_dict(), plain)
    assert load_pth(plain)["meta_archs"] == nb201_dict()["meta_archs"]
    packed_plain = _deflated_copy(plain, tmp_path / "packed-plain.pth")
    with pytest.raises(UnsafePickleError, match=r"packed-plain\.pth: refused.*compressed"):
        load_pth(packed_plain)

    # stored entries whose central directory claims more bytes than the file has
    data = bytearray(good.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first entry's record; its size at offset 24
    data[central + 24 : central + 28] = (1 << 31).to_bytes(4, "little")
    lying = tmp_path / "lying.pth"
    lying.write_bytes(bytes(data))
    assert zip_inflation(lying) == "entries larger than the file"
    assert zip_inflation(tmp_path / "missing.pth") is None  # not a zip: the loader says so

    # an entry flagged as UTF-8 whose name is not: Python's zipfile raises UnicodeDecodeError
    data = bytearray(good.read_bytes())
    central = data.index(b"PK\x01\x02")  # general purpose flags at 8, the name at 46
    data[central + 9] |= 0x08  # bit 11: the name is UTF-8
    data[central + 46] = 0xFF
    odd = tmp_path / "odd.pth"
    odd.write_bytes(bytes(data))
    with pytest.raises(UnreadableCheckpoint, match=r"odd\.pth: refused.*unreadable zip directory"):
        load_checkpoint(odd, device=torch.device("cpu"), config_hash="x")
    with pytest.raises(UnsafePickleError, match=r"odd\.pth: refused.*unreadable zip directory"):
        load_pth(odd)


class _Direct:
    """Pickles as a call of `cls` itself, looked up by its own name, with `args` and `state`."""

    def __init__(self, cls, args, state=None):
        self.cls, self.args, self.state = cls, args, state

    def __reduce__(self):
        return (self.cls, self.args) if self.state is None else (self.cls, self.args, self.state)


@pytest.mark.parametrize("what", ["dtype class", "array class"])
def test_a_pth_cannot_make_the_types_torch_may_build_by_their_names(tmp_path, what):
    # torch may BUILD a dtype or an UnpickledArray that the stand-ins made; a file that names
    # their classes itself would make one past the stand-ins' checks: a dtype whose field lies
    # far outside the item (read out of bounds), an array with any state
    import torch

    if what == "dtype class" and not hasattr(np, "dtypes"):
        pytest.skip("numpy < 1.25 has no numpy.dtypes: a file cannot name a dtype's class")
    far = (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1 << 20)}, 8, 1, 0)
    crafted = (
        _Direct(np.dtypes.BytesDType, (8,), far)
        if what == "dtype class"
        else _Direct(UnpickledArray, ((4,), np.dtype("f8")))
    )
    path = tmp_path / "evil.pth"
    torch.save({"t": torch.ones(2), "x": crafted}, path)  # a tensor: torch.load's path
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*(Unsupported global|refus)"):
        load_pth(path)


def test_crafted_numpy_inside_nats_file_is_refused(tmp_path):
    obj = {"meta_archs": list(ARCHS), "arch2infos": {0: nats_infos(0)}}
    obj["arch2infos"][0]["200"]["extra"] = frombuffer(FAKE_POINTER, OBJECT_CLEARED)
    path = write_pbz2(tmp_path / "evil.pickle.pbz2", obj)
    with pytest.raises(UnsafePickleError, match=r"evil\.pickle\.pbz2: refusing the numpy dtype"):
        read_nats_pbz2(path)


# ----------------------------------------------------------------------------- NB201 errors


def _pbz2(tmp_path, obj, protocol=4):
    path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    with bz2.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def _run(obj):
    return obj["arch2infos"][0]["full"]["all_results"][("cifar10", 777)]


def _without_cifar10(obj):
    """Architecture 0 with no cifar10 runs (and no cifar10 seeds listed)."""
    arch = obj["arch2infos"][0]["full"]
    del arch["dataset_seed"]["cifar10"]
    for key in [k for k in arch["all_results"] if k[0] == "cifar10"]:
        del arch["all_results"][key]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda o: _run(o)["eval_acc1es"].update({"ori-test@199": "abc"}),
            r"architecture 0, cifar10 seed 777: eval_acc1es\['ori-test@199'\] = 'abc' is not a "
            "number",
        ),
        (
            lambda o: _run(o)["eval_acc1es"].update({"ori-test@199": None}),
            r"architecture 0, cifar10 seed 777: eval_acc1es\['ori-test@199'\] = None is not",
        ),
        (  # a number as text is a foreign file's, not a value to convert
            lambda o: _run(o)["eval_acc1es"].update({"ori-test@199": "93.5"}),
            r"architecture 0, cifar10 seed 777: eval_acc1es\['ori-test@199'\] = '93.5' is not a "
            "number",
        ),
        (  # float(True) would read as 1%
            lambda o: _run(o)["eval_acc1es"].update({"ori-test@199": True}),
            r"architecture 0, cifar10 seed 777: eval_acc1es\['ori-test@199'\] = True is not a "
            "number",
        ),
        (
            lambda o: _run(o).update(epochs=200.5),
            r"architecture 0, cifar10 seed 777: epochs = 200.5 is not a whole number",
        ),
        (
            lambda o: _run(o).update(epochs="200"),
            r"architecture 0, cifar10 seed 777: epochs = '200' is not a number",
        ),
        (
            lambda o: _run(o).update(epochs="x"),
            r"architecture 0, cifar10 seed 777: epochs = 'x' is not a number",
        ),
        (
            lambda o: o["arch2infos"][0]["full"]["dataset_seed"].update(cifar10=777),
            r"architecture 0: dataset_seed\['cifar10'\] = 777 is not a list of seeds",
        ),
        (
            lambda o: _run(o).update(eval_acc1es={1: 2.0, "a": 3.0}),
            r"architecture 0, cifar10 seed 777: no eval_acc1es\['ori-test@199'\] \(has \[1, 'a'\]",
        ),
        (
            lambda o: o["arch2infos"].update({"0": o["arch2infos"][0]}),
            r"arch2infos has two entries for architecture 0 \(keys 0 and '0'\)",
        ),
        (  # int(1.9) would read it as architecture 1's, without a word
            lambda o: o["arch2infos"].update({1.9: o["arch2infos"].pop(1)}),
            r"arch2infos key 1\.9 is not an index",
        ),
        (
            lambda o: o["arch2infos"].update({True: o["arch2infos"].pop(1)}),
            r"arch2infos key True is not an index",
        ),
        (
            lambda o: o["arch2infos"].update({"one": o["arch2infos"].pop(1)}),
            r"arch2infos key 'one' is not an index",
        ),
        (  # neither an ArchResults state dict nor a dict wrapping one
            lambda o: o["arch2infos"][0].update(full={"epochs": 200, "info": {"note": 1}}),
            r"architecture 0: the 'full' entry has no 'all_results' \(not an ArchResults",
        ),
        (  # averaged over the other two seeds, it would read as a 3-seed mean
            lambda o: o["arch2infos"][0]["full"]["all_results"].pop(("cifar10", 888)),
            r"architecture 0: dataset_seed lists seed 888 of 'cifar10', but all_results has no "
            "such run",
        ),
        (
            lambda o: o["arch2infos"][0]["full"]["all_results"].update({("cifar10", 777): [93.5]}),
            r"architecture 0, cifar10 seed 777: the run is not a ResultsCount state dict",
        ),
        (
            lambda o: o["arch2infos"].update({0: [o["arch2infos"][0]["full"]]}),
            r"architecture 0: expected a dict of training budgets, got <class 'list'>",
        ),
        (
            _without_cifar10,
            r"architecture 0: no results for dataset 'cifar10' \(datasets: cifar10-valid, "
            r"cifar100\)",
        ),
        (  # neither budget: no hint of a 12-epoch entry that is not there
            lambda o: o["arch2infos"].update({2: {"x": o["arch2infos"][2]["full"]}}),
            r"architecture 2: no 200-epoch entry \('full' or '200'\); keys: \['x'\]$",
        ),
    ],
)
def test_nb201_bad_entries_name_file_and_entry(tmp_path, change, message):
    obj = nb201_dict()
    change(obj)
    path = _pbz2(tmp_path, obj)
    with pytest.raises(GroundTruthError, match=r"NATS-tss-v1_0-3ffb9\.pickle\.pbz2: " + message):
        read_nats_pbz2(path)


def test_a_bz2_bomb_is_refused_while_it_inflates(tmp_path, monkeypatch):
    # a few hundred bytes that inflate to a pickle of 64 MB of zeros, with the floor lowered
    # to 8 MB (it is 1 GB) so that the test inflates little: refused at the bound, not after
    import nasheur.groundtruth.nb201 as nb201

    path = tmp_path / "bomb.pickle.pbz2"
    path.write_bytes(bz2.compress(pickle.dumps(bytes(64 << 20), protocol=4), 9))
    assert path.stat().st_size < 10_000
    monkeypatch.setattr(nb201, "BZ2_FLOOR", 8 << 20)
    read = []
    inner_readinto = bz2.BZ2File.readinto
    monkeypatch.setattr(
        bz2.BZ2File, "readinto", lambda self, b: read.append(len(b)) or inner_readinto(self, b)
    )
    with pytest.raises(UnsafePickleError, match=r"bomb\.pickle\.pbz2: its bz2 stream inflates"):
        load_pbz2(path)
    assert sum(read) <= (8 << 20) + (8 << 20)  # stopped within a few chunks of the bound
    # a stream below the bound loads as before
    monkeypatch.setattr(nb201, "BZ2_FLOOR", 128 << 20)
    assert load_pbz2(path) == bytes(64 << 20)


# BINBYTES8 with a length of 2**60 bytes: beyond any machine's address space, so the stdlib's
# unpickler fails to allocate it whatever the kernel's overcommit policy
LENGTH_BOMB = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"abc."
TORCH_LEGACY_HEAD = b"".join(  # torch.save's legacy container before its object
    pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})
)


def test_a_huge_length_field_is_an_error_naming_the_file_not_a_bare_memory_error(tmp_path):
    from nasheur.data.cifar10 import _read_batch

    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(TORCH_LEGACY_HEAD + LENGTH_BOMB)
    zipped = tmp_path / "zipped.pth"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("zipped/data.pkl", LENGTH_BOMB)
    packed = tmp_path / "packed.pickle.pbz2"
    packed.write_bytes(bz2.compress(LENGTH_BOMB))
    batch = tmp_path / "data_batch_1"
    batch.write_bytes(LENGTH_BOMB)
    for read, path in [(load_pth, legacy), (load_pth, zipped), (load_pbz2, packed)]:
        with pytest.raises(PickleMemoryError, match=rf"{path.name}: unpickling ran out of memory"):
            read(path)
    with pytest.raises(PickleMemoryError, match=r"data_batch_1: .* \(the file has 15 bytes\)"):
        _read_batch(batch)


def test_a_memory_error_in_torch_load_names_the_file(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "tensors.pth"
    torch.save({"t": torch.ones(2)}, path)  # a tensor: read by torch.load, not the allow-list

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", out_of_memory)
    with pytest.raises(PickleMemoryError, match=r"tensors\.pth: unpickling ran out of memory"):
        load_pth(path)


def test_damaged_pickle_inside_bz2_names_the_file(tmp_path):
    good = pickle.dumps(nb201_dict(), protocol=4)
    path = tmp_path / "cut.pickle.pbz2"
    path.write_bytes(bz2.compress(good[: len(good) // 2]))
    with pytest.raises(GroundTruthError, match=r"cut\.pickle\.pbz2: not a readable .*truncated"):
        load_pbz2(path)
    path.write_bytes(bz2.compress(b"\x80\x04\xff garbage"))
    with pytest.raises(GroundTruthError, match=r"cut\.pickle\.pbz2: not a readable"):
        load_pbz2(path)


def test_damaged_file_in_simple_folder_is_named(tmp_path):
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    write_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": list(ARCHS)})
    for i in range(len(ARCHS)):
        write_pbz2(folder / f"{i:06d}.pickle.pbz2", nats_infos(i))
    whole = pickle.dumps(nats_infos(2), protocol=4)
    (folder / "000002.pickle.pbz2").write_bytes(bz2.compress(whole[:-40]))
    with pytest.raises(GroundTruthError, match=r"000002\.pickle\.pbz2: not a readable"):
        read_nats_folder(folder)


def test_damaged_pth_is_reported_as_damaged_with_its_path(tmp_path):
    import torch

    obj = {"t": torch.ones(2), "a": list(range(100))}  # a tensor: the torch.load path
    zipped = tmp_path / "zip.pth"
    torch.save(obj, zipped)
    zipped.write_bytes(zipped.read_bytes()[:-100])  # the zip's directory is gone
    with pytest.raises(GroundTruthError, match=r"zip\.pth: not a readable torch\.save file"):
        load_pth(zipped)

    legacy = tmp_path / "legacy.pth"
    torch.save(obj, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:200] + b"garbage" * 10)
    with pytest.raises(GroundTruthError, match=r"legacy\.pth: not a readable.*corrupt"):
        load_pth(legacy)


def test_protocol_2_sets_load_on_the_fast_path(tmp_path, monkeypatch):
    import torch

    obj = nb201_dict()
    obj["evaluated_indexes"] = set(range(len(ARCHS)))  # __builtin__.set at protocol 2
    obj["frozen"] = frozenset({1})
    pth = tmp_path / "sets.pth"
    torch.save(obj, pth)  # torch.save writes protocol 2
    assert b"c__builtin__\nset\n" in pickle.dumps(obj, protocol=2)

    def no_torch_load(*args, **kwargs):
        raise AssertionError("the plain fast path should have read this file")

    monkeypatch.setattr(torch, "load", no_torch_load)
    got = load_pth(pth)
    assert got["evaluated_indexes"] == set(range(len(ARCHS))) and got["frozen"] == {1}
    nats = _pbz2(tmp_path, obj, protocol=2)
    assert read_nats_pbz2(nats).gt.keys == tuple(ARCHS)


def test_a_refusal_names_the_global_and_never_advises_loading_unsafely(tmp_path):
    # torch's message for a blocked module (os, posix) has no "WeightsUnpickler error:" line
    # and opens with advice to retry with weights_only=False: the error names the global
    import os

    import torch

    from nasheur.training import UnreadableCheckpoint, load_checkpoint

    path = tmp_path / "evil.pt"
    torch.save({"x": _Direct(os.system, ("true",))}, path)
    for load, error in (
        (load_pth, UnsafePickleError),
        (
            lambda p: load_checkpoint(p, device=torch.device("cpu"), config_hash="x"),
            UnreadableCheckpoint,
        ),
    ):
        with pytest.raises(error) as info:
            load(path)
        assert "system" in str(info.value) and "will likely succeed" not in str(info.value)


def test_a_global_that_torch_cannot_reach_is_named_not_called_damage(tmp_path):
    # a zip .pth whose pickle uses an opcode torch's own reader lacks (STACK_GLOBAL): the
    # allow-list reads on to the global and refuses it before torch.load is tried
    def text(s: bytes) -> bytes:  # BINUNICODE
        return b"X" + len(s).to_bytes(4, "little") + s

    pkl = b"\x80\x02" + text(b"os") + text(b"system") + b"\x93" + text(b"true") + b"\x85R."
    path = tmp_path / "stack-global.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/version", "3\n")
    with pytest.raises(UnsafePickleError) as info:
        load_pth(path)
    said = str(info.value)
    assert said.startswith(f"{path}: refusing to load the global os.system")


@pytest.mark.parametrize("tensor", [False, True], ids=["alone", "after a tensor"])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_global_torch_load_allows_but_the_allow_list_does_not_is_refused(
    tmp_path, monkeypatch, tensor, zipped
):
    # torch's own list takes bytearray: bytearray(n) of a 1 kB file pins n bytes no file
    # holds (GBs each); the allow-list reads on past torch's globals and refuses it first
    import torch

    obj = {"t": torch.ones(2)} if tensor else {}
    obj["x"] = _Direct(bytearray, (1 << 20,))
    path = tmp_path / "bomb.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=zipped)

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load ran on a file the allow-list refuses")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(
        UnsafePickleError, match=r"bomb\.pth: refusing to load the global .*bytearray"
    ):
        load_pth(path)


@pytest.mark.parametrize("bomb_first", [True, False], ids=["bomb first", "bomb last"])
def test_every_data_pkl_of_a_zip_pth_is_read_through_the_allow_list(tmp_path, bomb_first):
    # a second entry of the same name: zipfile opens one, torch.load may read the other
    import torch

    src = tmp_path / "src.pth"
    torch.save({"t": torch.ones(2), "x": _Direct(bytearray, (1 << 20,))}, src)
    plain = pickle.dumps({"plain": 1}, protocol=2)
    path = tmp_path / "two.pth"
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(path, "w") as out:
        for entry in archive.infolist():
            own = archive.read(entry)
            pair = [own, plain] if bomb_first else [plain, own]
            for data in pair if entry.filename.endswith("/data.pkl") else [own]:
                with warnings.catch_warnings():  # "Duplicate name"
                    warnings.simplefilter("ignore")
                    out.writestr(entry.filename, data)
    with pytest.raises(
        UnsafePickleError, match=r"two\.pth: refusing to load the global .*bytearray"
    ):
        load_pth(path)


def _shared_nest(depth: int) -> list:
    """A list of itself, `depth` times over: a few bytes pickled, 2**depth items in its repr."""
    x: list = [1]
    for _ in range(depth):
        x = [x, x]
    return x


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda o: o["arch2infos"].update({float("inf"): o["arch2infos"].pop(0)}),
            r"arch2infos key inf is not an index",
        ),
        (
            lambda o: o["arch2infos"][0]["full"]["dataset_seed"].update(cifar10=[[1]]),
            r"not a well-formed nats-pbz2 file \(TypeError: unhashable",
        ),
        (  # its whole repr would take some 300 MB here (gigabytes a few levels deeper)
            lambda o: _run(o).update(epochs=_shared_nest(24)),
            r"epochs = \[\[\[\.\.\.\], \[\.\.\.\]\], \[\[\.\.\.\], \[\.\.\.\]\]\] is not a number",
        ),
        (  # an allowed OrderedDict whose instance attribute `get` shadows the method
            lambda o: o["arch2infos"][0]["full"].update(
                all_results=_Direct(
                    collections.OrderedDict,
                    (list(o["arch2infos"][0]["full"]["all_results"].items()),),
                    {"get": collections.OrderedDict},
                )
            ),
            r"not a well-formed nats-pbz2 file \((Value|Type)Error: ",
        ),
    ],
    ids=[
        "an infinite key",
        "a list as seed",
        "a value whose repr is huge",
        "a dict whose method a BUILD replaced",
    ],
)
def test_crafted_values_give_a_short_error_that_names_the_file(tmp_path, change, message):
    from nasheur.groundtruth.convert import read_source

    obj = nb201_dict()
    change(obj)
    path = _pbz2(tmp_path, obj)
    with pytest.raises(GroundTruthError, match=r"NATS-tss-v1_0-3ffb9\.pickle\.pbz2: ") as err:
        read_source(path)
    assert re.search(message, str(err.value)) and len(str(err.value)) < 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, r"\(RecursionError: "),
        (b"[\xff]", r"\(UnicodeDecodeError: "),
    ],
    ids=["nested too deep", "not utf-8"],
)
def test_a_crafted_nds_file_gives_an_error_that_names_it(tmp_path, text, message):
    from nasheur.groundtruth.convert import read_source
    from nasheur.spaces import get_space

    path = tmp_path / "DARTS.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        genotype = json.dumps(get_space("darts_nds").sample(np.random.default_rng(0)).to_nds())
        path.write_text(text.replace("GENOTYPE", genotype))
    with pytest.raises(GroundTruthError, match=r"DARTS\.json: not a well-formed nds-json file"):
        read_source(path)
    with pytest.raises(GroundTruthError, match=message):
        read_source(path)


def test_a_crafted_nds_number_is_named_with_its_job_or_read_as_no_epoch_count(tmp_path):
    # a 401-digit error is the job's bad value, not the file's Overflow; an infinite
    # optim.max_ep is no count of epochs (the curve's length stands in), as a text is
    from nasheur.groundtruth.convert import read_source
    from nasheur.spaces import get_space

    genotype = json.dumps(get_space("darts_nds").sample(np.random.default_rng(0)).to_nds())
    path = tmp_path / "DARTS.json"
    job = '{"net": {"genotype": %s}, "test_ep_top1": [%s]%s}'
    path.write_text("[" + job % (genotype, "1" + "0" * 400, "") + "]")
    with pytest.raises(GroundTruthError, match=r"job 0: the last test_ep_top1 1000.* not an error"):
        read_source(path)
    path.write_text("[" + job % (genotype, "5.0", ', "optim": {"max_ep": Infinity}') + "]")
    assert read_source(path).meta["epochs"] == "1"


# ----------------------------------------------------------------------------- audit additions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (  # NB201 stores percentages: 150 is none (fractions are caught by the chance floor)
            lambda o: _run(o)["eval_acc1es"].update({"ori-test@199": 150.0}),
            r"architecture 0, cifar10 seed 777: eval_acc1es\['ori-test@199'\] = 150\.0 is not a "
            "percentage",
        ),
        (
            lambda o: o["arch2infos"].update({4: o["arch2infos"][0]}),
            r"architecture 4: index outside meta_archs \(0\.\.3\)",
        ),
        (
            lambda o: o["arch2infos"].pop(3),
            r"1 of 4 architectures have no results \(first: index 3\)",
        ),
        (
            lambda o: o["arch2infos"][2]["full"].update(arch_str=ARCHS[3]),
            r"architecture 2: arch_str '.*' differs from meta_archs\[2\]",
        ),
        (
            lambda o: (
                o["arch2infos"][1]["full"].pop("arch_str"),
                o["meta_archs"].__setitem__(
                    1, "|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"
                ),
            ),
            r"meta_archs\[1\]: .*conv_9x9",
        ),
        (lambda o: o.update(meta_archs=[], arch2infos={}), r"'meta_archs' is empty"),
        (
            lambda o: o["meta_archs"].__setitem__(1, 5),
            r"'meta_archs' is not a list of arch strings",
        ),
        (lambda o: o.pop("arch2infos"), r"no 'arch2infos' dict$"),
    ],
    ids=[
        "above 100%",
        "index past meta_archs",
        "an architecture missing",
        "arch_str",
        "a bad arch",
        "no archs",
        "an arch not a string",
        "no arch2infos",
    ],
)
def test_nb201_entries_that_do_not_fit_meta_archs_are_refused(tmp_path, change, message):
    obj = nb201_dict()
    change(obj)
    path = _pbz2(tmp_path, obj)
    with pytest.raises(GroundTruthError, match=r"NATS-tss-v1_0-3ffb9\.pickle\.pbz2: " + message):
        read_nats_pbz2(path)


def test_a_global_of_an_allowed_module_is_still_refused(tmp_path):
    # the allow-list names (module, name) pairs: collections.OrderedDict admits nothing else of
    # collections
    obj = {"meta_archs": list(ARCHS), "x": _Reduce(collections.namedtuple, ("P", "a b"))}
    path = _pbz2(tmp_path, obj)
    with pytest.raises(
        UnsafePickleError, match=r"refusing to load the global collections\.namedtuple"
    ):
        load_pbz2(path)
    # numpy.ndarray and numpy.dtype are listed: numpy.save is not
    with pytest.raises(UnsafePickleError, match=r"crafted\.pkl: refusing .* numpy\.save") as info:
        load(b"\x80\x02cnumpy\nsave\n.")
    assert info.value.refused == ("numpy", "save")


class _PersistentPickler(pickle.Pickler):
    """Writes "tensor" as a persistent reference, as torch.save writes its storages."""

    def persistent_id(self, obj):
        return "storage-0" if obj == "tensor" else None


def test_a_persistent_reference_is_refused_not_read_as_none():
    buffer = io.BytesIO()
    _PersistentPickler(buffer, protocol=2).dump({"weights": "tensor"})
    with pytest.raises(UnsafePickleError, match=r"crafted\.pkl: refusing a persistent reference"):
        load(buffer.getvalue())


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_zip_entries_compressed_any_way_are_refused(tmp_path, method):
    # torch.save stores its entries; bzip2 and lzma inflate as deflate does
    import torch

    plain = tmp_path / "plain.pth"
    torch.save(nb201_dict(), plain)
    packed = tmp_path / "packed.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", method) as dst:
        for entry in src.infolist():
            dst.writestr(entry.filename, src.read(entry))
    assert zip_inflation(packed).startswith("compressed entries: ")
    with pytest.raises(UnsafePickleError, match=r"packed\.pth: refused.*compressed entries"):
        load_pth(packed)


def test_a_refusal_by_torch_load_gives_no_advice_to_allow_the_global(tmp_path):
    # torch's message goes on: "Please use `torch.serialization.add_safe_globals([relu])`",
    # which would let the file's global run; the error keeps only what was refused
    import torch

    path = tmp_path / "evil.pth"
    # a torch global (the allow-list leaves torch's to torch.load) that torch does not allow
    torch.save({"t": torch.ones(2), "x": _Direct(torch.nn.functional.relu, (torch.ones(1),))}, path)
    with pytest.raises(UnsafePickleError, match=r"evil\.pth: refused by torch\.load") as info:
        load_pth(path)
    said = str(info.value)
    assert "relu" in said and "add_safe_globals" not in said and "Please use" not in said


def test_bytes_and_codecs_stand_ins_take_only_what_pickle_writes():
    # __builtin__.bytes() is b"" only: bytes(n) would allocate n bytes the file never held
    with pytest.raises(UnsafePickleError, match=r"crafted\.pkl: refusing bytes\(\) with arg"):
        load(pickle.dumps(_Reduce(bytes, (1 << 20,)), protocol=2))
    assert load(pickle.dumps(b"", protocol=2)) == b""
    assert load(pickle.dumps(b"\xe9\x00", protocol=2)) == b"\xe9\x00"  # _codecs.encode latin1
    import codecs

    with pytest.raises(UnsafePickleError, match=r"refusing _codecs\.encode\(str, 'utf-8'\)"):
        load(pickle.dumps(_Reduce(codecs.encode, ("\xe9", "utf-8")), protocol=2))


def test_an_allow_list_of_a_module_takes_names_not_a_string():
    # {"collections": "OrderedDict"} would allow the globals O, r, d, e ... of collections
    with pytest.raises(TypeError, match="collection of names"):
        safe_load(io.BytesIO(pickle.dumps(1)), {"collections": "OrderedDict"}, source="x")


def test_array_payloads_that_numpy_would_misread_are_refused_by_the_stand_ins():
    # each refused by the stand-ins themselves (UnsafePickleError), not left to numpy
    cases = {
        "a list payload": (reconstructed([1], np.dtype("i1")), "object arrays are not allowed"),
        "more bytes than elements": (reconstructed(b"\0" * 16, np.dtype("f8")), "need 8 bytes"),
        "more bytes, _frombuffer": (frombuffer(b"\0" * 16, np.dtype("f8")), "need 8 bytes"),
        "_frombuffer of an array": (
            _Reduce(numeric._frombuffer, (np.arange(8, dtype=np.uint8), np.dtype("u1"), (8,), "C")),
            "refusing _frombuffer of a UnpickledArray",
        ),
    }
    for name, (payload, said) in cases.items():
        for protocol in (2, 4):
            with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: .*" + re.escape(said)):
                load(pickle.dumps([payload], protocol=protocol))
            assert name


def test_a_reconstructed_array_takes_one_build():
    # numpy would let a second BUILD replace the data of an array the file refers to again
    made = _piece(reconstructed(b"A" * 8, np.dtype("u1"), shape=(8,)))
    again = _piece((1, (8,), np.dtype("u1"), False, b"B" * 8))
    with pytest.raises(
        UnsafePickleError, match=r"crafted\.pkl: refusing to set an array's state twice"
    ):
        load(b"\x80\x02" + made + again + b"b.")
    assert load(b"\x80\x02" + made + b".").tobytes() == b"A" * 8
