"""The rules of the restricted unpickler one at a time: the allow-list's forms, the array
shapes, dtypes and states the numpy stand-ins take, the zip and torch refusals, and how
``read_source`` reports what a pickle reader raised.

Each case pins one rule at its edge (a bound, a spelling, a form numpy or Python 2 writes), so
that loosening the rule fails here even where the broader tests of
``tests/test_untrusted_pickles.py`` are refused by a later check.
"""

from __future__ import annotations

import bz2
import collections
import io
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from nasheur.groundtruth import GroundTruthError
from nasheur.safe_pickle import (
    NUMPY_ARRAY_GLOBALS,
    PickleMemoryError,
    UnsafePickleError,
    checking_numpy,
    safe_load,
    torch_refusal,
    zip_damage,
    zip_inflation,
)
from tests.test_untrusted_pickles import (
    ALLOWED,
    FAKE_POINTER,
    LENGTH_BOMB,
    OBJECT_FLAGS,
    TORCH_LEGACY_HEAD,
    _piece,
    _Reduce,
    _shared_nest,
    crafted_dtype,
    load,
    multiarray,
    numeric,
    reconstructed,
)

# ----------------------------------------------------------------------------- allow-lists


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        # a three-part key must not shrink to the pair it starts with (here: os.system)
        ({("os", "system", "x"): print}, "bad allow-list key"),
        ({b"os": {"system"}}, "bad allow-list key"),  # bytes of length 2 are no pair
        ({5: print}, "bad allow-list key"),
        ([("os", "system", "x")], "bad allow-list entry"),
        (["os"], "bad allow-list entry"),  # a str of length 2 is no (module, name) pair
    ],
    ids=["3-tuple key", "bytes key", "int key", "3-tuple pair", "2-letter string"],
)
def test_allow_list_entries_must_be_module_name_pairs(allowed, message):
    with pytest.raises(TypeError, match=message):
        safe_load(io.BytesIO(pickle.dumps(1)), allowed, source="x")


@pytest.mark.parametrize("name", ["eval", "getattr", "__import__"])
def test_builtins_other_than_the_listed_ones_are_refused(name):
    # nb201 lists builtins.set: that admits no other name of the builtins module
    data = f"cbuiltins\n{name}\n.".encode()
    with pytest.raises(
        UnsafePickleError, match=rf"^x: refusing to load the global builtins\.{name}"
    ):
        safe_load(io.BytesIO(data), {("builtins", "set"): set}, source="x")


def test_a_dotted_name_on_the_allow_list_resolves_as_pickle_resolves_it():
    # protocol 4 names nested attributes by their qualified name (STACK_GLOBAL)
    def text(s: bytes) -> bytes:  # BINUNICODE
        return b"X" + len(s).to_bytes(4, "little") + s

    data = b"\x80\x04" + text(b"collections") + text(b"OrderedDict.fromkeys") + b"\x93."
    got = safe_load(io.BytesIO(data), {"collections": {"OrderedDict.fromkeys"}}, source="x")
    assert got == collections.OrderedDict.fromkeys


# ----------------------------------------------------------------------------- Python 2 pickles


def _short_string(b: bytes) -> bytes:  # SHORT_BINSTRING: a Python 2 str
    return b"U" + bytes([len(b)]) + b


# three little-endian int32s, the second and third with bytes no ASCII decoder takes
PY2_RAW = struct.pack("<3i", 1, 128, -1)
# an int32 array as Python 2's numpy pickles it: dtype spec, byte order and data are Python 2
# strs, which encoding="bytes" reads as bytes and "latin1" as str
PY2_ARRAY = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85"
    + _short_string(b"b")
    + b"\x87R(K\x01K\x03\x85cnumpy\ndtype\n"
    + _short_string(b"i4")
    + b"K\x00K\x01\x87R(K\x03"
    + _short_string(b"<")
    + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
    + _short_string(PY2_RAW)
    + b"tb."
)


@pytest.mark.parametrize("encoding", ["bytes", "latin1"])
def test_python_2_numpy_arrays_load_with_the_encoding_given(encoding):
    got = safe_load(io.BytesIO(PY2_ARRAY), ALLOWED, source="x", encoding=encoding)
    assert got.dtype == np.dtype("<i4") and got.tolist() == [1, 128, -1]


def test_python_2_strings_decode_as_ascii_by_default_as_pickle_does():
    assert (
        safe_load(io.BytesIO(b"\x80\x02" + _short_string(b"abc") + b"."), {}, source="x") == "abc"
    )
    with pytest.raises(UnicodeDecodeError):  # pickle.Unpickler's own default, "ASCII"
        safe_load(io.BytesIO(PY2_ARRAY), ALLOWED, source="x")


@pytest.mark.parametrize("source", ["no-such-file.pkl", "in\0memory"])
def test_out_of_memory_for_a_source_that_is_no_file_says_its_size_is_unknown(source):
    # a name that is not a file (OSError), or not even a path (ValueError: a NUL in it)
    with pytest.raises(PickleMemoryError, match=r"ran out of memory \(its size unknown\)"):
        safe_load(io.BytesIO(LENGTH_BOMB), {}, source=source)


# ----------------------------------------------------------------------------- zip containers


def _zip(path, entries: list[tuple[str, bytes, int]]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, method in entries:
            archive.writestr(name, data, compress_type=method)
    return path


@pytest.mark.parametrize("which", [0, 1, 2])
def test_one_compressed_entry_among_stored_ones_is_refused(tmp_path, which):
    # torch would inflate that one entry whatever its size, wherever it stands
    entries = [(f"a/{n}", b"\0" * 64, zipfile.ZIP_STORED) for n in ("data.pkl", "version", "x")]
    entries[which] = (entries[which][0], entries[which][1], zipfile.ZIP_DEFLATED)
    path = _zip(tmp_path / "one.pth", entries)
    assert zip_inflation(path) == f"compressed entries: {entries[which][0]}"


@pytest.mark.parametrize(
    ("sizes", "refused"),
    [
        (lambda n: (n // 2, n - n // 2), False),  # exactly the file's size: not beyond it
        (lambda n: (n // 2, n - n // 2 + 1), True),  # one byte beyond
        (lambda n: (n * 3 // 5, n * 3 // 5), True),  # each below the file, both beyond it
    ],
    ids=["sum equals the file", "sum one byte over", "two entries over together"],
)
def test_stored_entries_may_claim_at_most_the_files_size_together(tmp_path, sizes, refused):
    path = _zip(tmp_path / "sizes.pth", [(n, b"x", zipfile.ZIP_STORED) for n in ("a", "b")])
    data = bytearray(path.read_bytes())
    claimed = sizes(len(data))
    at = -1
    for size in claimed:  # each central directory record's uncompressed size, at offset 24
        at = data.index(b"PK\x01\x02", at + 1)
        data[at + 24 : at + 28] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert [e.file_size for e in zipfile.ZipFile(path).infolist()] == list(claimed)
    assert zip_inflation(path) == ("entries larger than the file" if refused else None)


def test_zip_damage_names_the_entry_whose_crc_fails_and_nothing_else(tmp_path):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(64, dtype=torch.float32)}, good)
    assert zip_damage(good) is None
    data = bytearray(good.read_bytes())
    at = data.find(torch.arange(64, dtype=torch.float32).numpy().tobytes()) + 100
    data[at] ^= 1
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    assert zip_damage(tmp_path / "flipped.pt") == "Bad CRC-32 for file 'good/data/0'"
    # left to the loader, which names them: not a zip (torch's legacy format), cut short
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": 1}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:300])
    assert zip_damage(legacy) is None and zip_damage(tmp_path / "cut.pt") is None
    # an entry stored without a CRC (torch's compute_crc32 off) is not checked
    nocrc = _zip(tmp_path / "nocrc.pt", [("a", b"x" * 8, zipfile.ZIP_STORED)])
    raw = bytearray(nocrc.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):  # local, central CRC
        at = raw.index(sig) + offset
        raw[at : at + 4] = bytes(4)
    nocrc.write_bytes(bytes(raw))
    assert zipfile.ZipFile(nocrc).infolist()[0].CRC == 0 and zip_damage(nocrc) is None


# ----------------------------------------------------------------------------- torch's refusals

# torch.load's messages (torch/serialization.py, _get_wo_message), with its advice to load the
# file unsafely: the advice must never be passed on
UNSAFE_ADVICE = (
    "In PyTorch 2.6, we changed the default value of the `weights_only` argument in `torch.load` "
    "from `False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will "
    "likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
    "file from a trusted source."
)
DOCS = (
    "\n\nCheck the documentation of torch.load to learn more about types accepted by default with "
    "weights_only https://pytorch.org/docs/stable/generated/torch.load.html."
)
BLOCKED = "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
MUST_IMPORT = (
    "``torch.nested`` and ``torch._dynamo`` must be imported to load nested jagged tensors (NJTs)"
)


@pytest.mark.parametrize(
    ("message", "said"),
    [
        (f"Weights only load failed. {UNSAFE_ADVICE}\n\n\n{BLOCKED}{DOCS}", BLOCKED),
        # the reason shares the first line here; the line after it is the advice alone
        (f"Weights only load failed. {MUST_IMPORT}\n {UNSAFE_ADVICE}\n", MUST_IMPORT),
        ("", "UnpicklingError"),  # nothing said: the error's type
        (f"Weights only load failed. {UNSAFE_ADVICE}\n{DOCS}", "UnpicklingError"),
    ],
    ids=["blocked module", "module to import", "empty", "advice only"],
)
def test_torch_refusal_keeps_the_reason_and_drops_the_advice(message, said):
    got = torch_refusal(pickle.UnpicklingError(message))
    assert "weights_only" not in got and "will likely succeed" not in got
    if said is not None:
        assert got == said


# ----------------------------------------------------------------------------- array shapes


def _from_buffer(raw: bytes, dtype, shape) -> _Reduce:
    return _Reduce(numeric._frombuffer, (raw, dtype, shape, "C"))


ARRAY_FORMS = {
    "ndarray BUILD": lambda raw, shape: reconstructed(raw, np.dtype("u1"), shape=shape),
    "_frombuffer": lambda raw, shape: _from_buffer(raw, np.dtype("u1"), shape),
}


@pytest.mark.parametrize("form", list(ARRAY_FORMS))
@pytest.mark.parametrize(
    "shape", [(1 << 20, 0), (1024, 1024, 0), (0, 1 << 20)], ids=["rows", "2 extents", "columns"]
)
def test_empty_arrays_up_to_the_extent_bound_load(form, shape):
    # the nonzero extents may multiply to 2**20 exactly
    assert load(pickle.dumps(ARRAY_FORMS[form](b"", shape), protocol=2)).shape == shape


@pytest.mark.parametrize("form", list(ARRAY_FORMS))
@pytest.mark.parametrize(
    ("raw", "shape", "said"),
    [
        (b"", ((1 << 20) + 1, 0), "empty array"),  # one past the bound
        (b"", (1024, 1025, 0), "empty array"),  # no extent past it, their product is
        (b"\0" * 8, (-1, -8), "negative extent"),  # a product that the 8 bytes would back
        (b"\0" * 8, (8.0,), "not a tuple of ints"),  # int() would take it
        (b"\0" * 8, ("8",), "not a tuple of ints"),
        (b"\0" * 8, None, "not a tuple of ints"),
    ],
    ids=["rows past 2**20", "product past 2**20", "negative", "float", "str", "None"],
)
def test_array_shapes_are_refused_by_the_stand_ins(form, raw, shape, said):
    with pytest.raises(UnsafePickleError, match=rf"^crafted\.pkl: refusing .*{said}"):
        load(pickle.dumps(ARRAY_FORMS[form](raw, shape), protocol=2))


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "value",
    [
        np.zeros(2, dtype="V4"),
        np.array(["2020-01-01"], dtype="M8[D]"),
        np.array([1], dtype="m8[s]"),
        np.datetime64("2020-01-01"),
    ],
    ids=["void", "datetime", "timedelta", "datetime scalar"],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_numpys_own_pickles_of_other_dtype_kinds_are_refused(value, protocol):
    # plain means bool/int/float/complex/bytes/str: no raw void items, no datetimes
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing the numpy dtype"):
        load(pickle.dumps(value, protocol=protocol))


@pytest.mark.parametrize(
    "payload",
    [
        _Reduce(multiarray.scalar, ("f8", b"\0" * 8)),
        _from_buffer(b"\0" * 8, "f8", (1,)),
        reconstructed(b"\0" * 8, "f8"),
    ],
    ids=["scalar", "_frombuffer", "ndarray BUILD"],
)
def test_a_str_where_a_dtype_belongs_is_refused(payload):
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing str where a numpy dtype"):
        load(pickle.dumps(payload, protocol=2))


@pytest.mark.parametrize(
    "args",
    [(np.dtype("S1000000"),), (np.dtype("f8"), b"\0" * 16), (np.dtype("f8"), 1.5)],
    ids=["no data", "more bytes", "a float"],
)
def test_a_scalar_without_its_items_bytes_is_refused(args):
    # numpy would allocate and zero the item itself: 2 GB and seconds per call of a 100-byte file
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing a numpy scalar"):
        load(pickle.dumps(_Reduce(multiarray.scalar, args), protocol=2))


@pytest.mark.parametrize("value", [np.float64(1.5), np.bytes_(b"ab"), np.str_("ab")])
def test_numpys_own_scalar_pickles_load(value):
    assert load(pickle.dumps(value, protocol=2)) == value


@pytest.mark.parametrize(
    "spec",
    [5, [("a", "O")], {"names": ["a"], "formats": ["f8"]}, ("f8", ())],
    ids=["int", "list", "dict", "tuple numpy reads as f8"],
)
def test_the_dtype_stand_in_takes_only_a_type_string(spec):
    # numpy.dtype(spec) on anything else would build what the string check never saw
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing the numpy dtype"):
        load(pickle.dumps(_Reduce(np.dtype, (spec, False, True)), protocol=2))


@pytest.mark.parametrize("dtype", [np.dtype("O"), np.dtype("M8[s]")], ids=["object", "datetime"])
def test_the_stand_ins_check_a_dtype_they_are_handed_whatever_made_it(dtype):
    # torch.load calls the stand-ins with objects its own unpickler made, not the file's
    frombuffer = NUMPY_ARRAY_GLOBALS[(numeric.__name__, "_frombuffer")]
    with pytest.raises(UnsafePickleError, match="refusing the numpy dtype"):
        frombuffer(b"\0" * 8, dtype, (1,), "C")


def test_checking_numpy_names_its_file_and_sees_dtypes_made_after_an_inner_load():
    # torch.load runs inside checking_numpy; a whole safe_load inside it must not end the check
    make_dtype = NUMPY_ARRAY_GLOBALS[("numpy", "dtype")]
    with (
        pytest.raises(UnsafePickleError, match=r"^outer\.pth: refusing the numpy dtype"),
        checking_numpy("outer.pth"),
    ):
        assert load(pickle.dumps(np.float64(0.5), protocol=2)) == 0.5
        altered = make_dtype("f8", False, True)
        altered.__setstate__((3, "<", None, None, None, -1, -1, OBJECT_FLAGS))  # as a BUILD


# ----------------------------------------------------------------------------- array states


@pytest.mark.parametrize("protocol", [2, 5])
def test_the_four_item_state_of_old_numpy_loads(protocol):
    # (shape, dtype, is_fortran, raw): numpy before the version field
    old = _Reduce(
        multiarray._reconstruct, (np.ndarray, (0,), b"b"), ((3,), np.dtype("u1"), False, b"abc")
    )
    assert load(pickle.dumps(old, protocol=protocol)).tolist() == [97, 98, 99]


def test_an_array_state_that_is_not_a_tuple_is_refused():
    state = [1, (3,), np.dtype("u1"), False, b"abc"]
    listed = _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), state)
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: .*state that is not numpy's"):
        load(pickle.dumps(listed, protocol=2))


def test_protocol_5_arrays_are_writeable_like_numpys_own():
    data = pickle.dumps(np.arange(4.0), protocol=5)
    assert pickle.loads(data).flags.writeable  # numpy's own: over a bytearray from the file
    got = load(data)
    got[0] = 7.0
    assert got.tolist() == [7.0, 1.0, 2.0, 3.0]


def test_an_array_made_by_frombuffer_takes_no_build_even_a_genuine_one():
    made = _piece(_from_buffer(b"A" * 8, np.dtype("u1"), (8,)))
    again = _piece((1, (8,), np.dtype("u1"), False, b"B" * 8))
    with pytest.raises(UnsafePickleError, match=r"^crafted\.pkl: refusing to set an array's state"):
        load(b"\x80\x02" + made + again + b"b.")


def test_an_array_keeps_its_own_dtype_when_the_files_dtype_is_altered_later():
    # the array's dtype object is built by the file, memoized, BUILT into an array, then BUILT
    # into object items; set() over the array inside the same load must still read int64s (a
    # reference to the file's dtype would read 0x4141... as an object pointer: SIGSEGV)
    dtype = _piece(crafted_dtype("i8")) + b"q\xc8"  # memo 200: the file's dtype
    array = (
        b"c" + multiarray.__name__.encode() + b"\n_reconstruct\n"
        + _piece((np.ndarray, (0,), b"b")) + b"Rq\xc9"  # memo 201: the array
        + b"(K\x01" + _piece((1,)) + b"h\xc8\x89" + _piece(FAKE_POINTER) + b"tb"
    )  # fmt: skip
    alter = b"h\xc8" + _piece((3, "<", None, None, None, -1, -1, OBJECT_FLAGS)) + b"b0"
    iterate = b"c__builtin__\nset\nh\xc9\x85R"
    data = b"\x80\x02(" + dtype + b"0" + array + alter + iterate + b"t."
    script = textwrap.dedent(
        """
        import io, sys
        from nasheur.safe_pickle import (
            LATIN1_BYTES_GLOBALS, NUMPY_ARRAY_GLOBALS, UnsafePickleError, safe_load
        )
        allowed = {**NUMPY_ARRAY_GLOBALS, **LATIN1_BYTES_GLOBALS, ("__builtin__", "set"): set}
        try:
            safe_load(io.BytesIO(sys.stdin.buffer.read()), allowed, source="x")
        except UnsafePickleError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("x: refusing the numpy dtype")


def test_codecs_encode_takes_a_str_in_any_spelling_of_latin_1_only():
    import codecs

    for spelling in ("latin1", "latin-1", "ISO-8859-1"):
        data = pickle.dumps(_Reduce(codecs.encode, ("\xe9", spelling)), protocol=2)
        assert load(data) == b"\xe9"
    with pytest.raises(UnsafePickleError, match=r"refusing _codecs\.encode\(bytes, 'latin1'\)"):
        load(pickle.dumps(_Reduce(codecs.encode, (b"\xe9", "latin1")), protocol=4))


# ----------------------------------------------------------------------------- read_source


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (pickle.UnpicklingError("invalid load key, 'x'."), r"UnpicklingError: invalid load key"),
        (EOFError(), r"EOFError: \)"),  # no message at all
        (zipfile.BadZipFile("File is not a zip file"), r"BadZipFile: File is not a zip file"),
        (KeyError("k" * 10_000), r"\(KeyError: k{200}\)"),  # cut short
        (KeyError(_shared_nest(12)), r"KeyError: \[\[\[\.\.\.\], \[\.\.\.\]\]"),  # brief()
    ],
    ids=["unpickling", "bare EOF", "bad zip", "long key", "nested key"],
)
def test_what_a_pickle_reader_raises_becomes_an_error_naming_the_file(
    tmp_path, monkeypatch, error, said
):
    # read_source's net under the readers: an error they let through names the file, briefly
    from nasheur.groundtruth import nb201
    from nasheur.groundtruth.convert import read_source

    def reader(*args, **kwargs):
        raise error

    monkeypatch.setattr(nb201, "read_nats_pbz2", reader)
    path = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    path.write_bytes(bz2.compress(b"x"))
    with pytest.raises(GroundTruthError, match=r"pbz2: not a well-formed nats-pbz2 file") as info:
        read_source(path)
    assert len(str(info.value)) < 500
    assert re.search(said, str(info.value)), str(info.value)
    assert info.value.__cause__ is error  # the reader's own error stays reachable


def test_pickle_containers_are_known_by_suffix_then_by_their_first_byte(tmp_path):
    from nasheur.groundtruth.convert import detect_format

    legacy = tmp_path / "NAS-Bench-201-v1_0-e61699"  # a legacy torch.save, its suffix lost
    legacy.write_bytes(TORCH_LEGACY_HEAD + pickle.dumps({}, protocol=2))
    assert detect_format(legacy) == "nb201-pth"
    # the name wins over the bytes: each reader then says what is wrong with the file
    pth = tmp_path / "odd.pth"
    pth.write_bytes(bz2.compress(b"x"))
    pbz2 = tmp_path / "odd.pickle.pbz2"
    pbz2.write_bytes(TORCH_LEGACY_HEAD)
    assert (detect_format(pth), detect_format(pbz2)) == ("nb201-pth", "nats-pbz2")
