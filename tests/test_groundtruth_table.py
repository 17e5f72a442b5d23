"""Ground-truth tables: the project's CSV layout, the NB201 layout, and every rejection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasheur.groundtruth import GroundTruth, GroundTruthError, read_table, write_table
from tests.conftest import SHARED_NB201

NB201_CSV = SHARED_NB201
needs_nb201 = pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"{NB201_CSV} not present")


def _write(tmp_path, text, name="gt.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ----------------------------------------------------------------------------- round trip


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    keys = [f"arch{i}" for i in range(500)] + ["|nor_conv_3x3~0|+|none~0|skip_connect~1|"]
    acc = np.concatenate([rng.random(500), [1.0 / 3.0]])
    acc[0], acc[1] = 0.0, 1.0
    path = tmp_path / "sub" / "gt.csv"
    write_table(path, keys, acc, meta={"source": "x.pth", "sha256": "ab" * 32})
    gt = read_table(path)
    assert gt.keys == tuple(keys)
    assert np.array_equal(gt.acc, acc)  # bit-exact
    assert gt.meta["unit"] == "fraction" and gt.meta["sha256"] == "ab" * 32
    assert gt.meta["source"] == "x.pth" and gt.source == str(path)
    assert not list(path.parent.glob("*.tmp"))  # the temporary file is gone
    # keys with characters that str.splitlines would break a line at
    odd = ["a\fb", "c\x1cd", "e\u2028f"]
    write_table(path, odd, [0.1, 0.2, 0.3], meta={})
    assert read_table(path).keys == tuple(odd)
    # the same line repeated says one thing
    text = path.read_text()
    path.write_text("# unit: fraction\n" + text)
    assert read_table(path).keys == tuple(odd)
    # overwriting replaces atomically
    write_table(path, keys[:2], acc[:2], meta={})
    assert len(read_table(path)) == 2


def test_groundtruth_api():
    gt = GroundTruth(keys=("a", "b", "c"), acc=np.array([0.1, 0.5, 0.9]), source="mem")
    assert len(gt) == 3 and "b" in gt and "z" not in gt
    assert gt["c"] == 0.9 and gt.index("b") == 1
    assert np.array_equal(gt.lookup(["c", "a"]), [0.9, 0.1])
    assert gt.acc.dtype == np.float64
    with pytest.raises(ValueError):
        gt.acc[0] = 0.3  # read-only
    with pytest.raises(KeyError, match="mem"):
        gt["z"]
    with pytest.raises(ValueError, match="duplicate"):
        GroundTruth(keys=("a", "a"), acc=np.array([0.1, 0.2]))


def test_write_rejects_bad_input(tmp_path):
    p = tmp_path / "x.csv"
    with pytest.raises(ValueError):
        write_table(p, ["a", "b"], [0.1], meta={})
    with pytest.raises(ValueError):
        write_table(p, ["a"], [1.5], meta={})
    with pytest.raises(ValueError):
        write_table(p, ["a", "a"], [0.1, 0.2], meta={})
    with pytest.raises(ValueError):
        write_table(p, ["a"], [0.1], meta={"unit": "percent"})
    assert not p.exists()


# ----------------------------------------------------------------------------- units


def test_unit_declared_in_file(tmp_path):
    p = _write(tmp_path, "# unit: percent\nkey,accuracy\na,93.5\nb,10\n")
    gt = read_table(p)
    assert gt["a"] == pytest.approx(0.935) and gt["b"] == 0.1
    p2 = _write(tmp_path, "# unit: fraction\nkey,accuracy,extra\na,0.25,zzz\n", "f.csv")
    assert read_table(p2)["a"] == 0.25


def test_unit_from_argument_and_conflicts(tmp_path):
    p = _write(tmp_path, "key,accuracy\na,93.5\n")
    with pytest.raises(GroundTruthError, match=r"# unit: percent.*ground_truth\.unit="):
        read_table(p)
    assert read_table(p, unit="percent")["a"] == pytest.approx(0.935)
    with pytest.raises(GroundTruthError, match=r"gt\.csv:2: key 'a'"):
        read_table(p, unit="fraction")  # 93.5 is not a fraction
    q = _write(tmp_path, "# unit: fraction\nkey,accuracy\na,0.5\n", "q.csv")
    with pytest.raises(GroundTruthError, match="declares unit"):
        read_table(q, unit="percent")
    assert read_table(q, unit="fraction")["a"] == 0.5
    with pytest.raises(GroundTruthError):
        read_table(q, unit="permille")


def test_a_percent_table_of_fractions_is_refused(tmp_path):
    # fractions read as percent would put every architecture in one 0.1% bin
    p = _write(tmp_path, "# unit: percent\nkey,accuracy\na,0.935\nb,0.91\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:1: .*look like fractions.*fraction"):
        read_table(p)
    q = _write(tmp_path, "key,accuracy\na,0.935\nb,1\n", "q.csv")
    with pytest.raises(GroundTruthError, match=r"q\.csv:1: .*no accuracy exceeds 1"):
        read_table(q, unit="percent")
    assert read_table(q, unit="fraction")["b"] == 1.0
    r = _write(tmp_path, "# unit: percent\nkey,accuracy\na,0.5\nb,1.5\n", "r.csv")
    assert read_table(r)["b"] == pytest.approx(0.015)  # one value above 1: percent it is


def test_other_column(tmp_path):
    p = _write(tmp_path, "# unit: percent\nkey,accuracy,test\na,50,60\n")
    assert read_table(p, column="test")["a"] == 0.6
    with pytest.raises(GroundTruthError, match=r"'nope'.*available columns: accuracy, test"):
        read_table(p, column="nope")


# ----------------------------------------------------------------------------- NB201 file


@needs_nb201
def test_nb201_shared_file():
    valid = read_table(NB201_CSV)
    test = read_table(NB201_CSV, column="test_acc")
    assert len(valid) == len(test) == 15625
    assert valid.keys == test.keys
    for gt in (valid, test):
        assert np.all((gt.acc >= 0) & (gt.acc <= 1))
    # the spec's 341 cells without an input-to-output path: exactly the rows at 10% (chance)
    from nasheur.spaces.nb201 import has_path, parse

    chance = {k for k, a in zip(test.keys, test.acc, strict=True) if a == 0.10}
    assert chance == {k for k in test.keys if not has_path(parse(k))}
    assert len(chance) == 341
    first = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert first in valid and valid.index(first) == 0
    assert valid[first] == pytest.approx(0.8198266666)
    assert test[first] == pytest.approx(0.8152)
    with pytest.raises(GroundTruthError, match="available columns: valid_acc, test_acc"):
        read_table(NB201_CSV, column="train_acc")


@needs_nb201
def test_nb201_reads_without_torch():
    code = (
        "import sys; from nasheur.groundtruth.table import read_table; "
        f"g = read_table({str(NB201_CSV)!r}); assert len(g) == 15625; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_nb201_layout_small(tmp_path):
    p = _write(
        tmp_path,
        "index,arch_str,valid_acc,test_acc\n0,|a~0|,90.5,90.0\n1,|b~0|,10.0,100\n",
    )
    gt = read_table(p)
    assert gt["|a~0|"] == pytest.approx(0.905) and gt["|b~0|"] == 0.1
    assert read_table(p, column="test_acc")["|b~0|"] == 1.0


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("# unit: percent\nkey,accuracy\na,50\n,60\n", r"gt\.csv:4: empty key"),
        (
            "# unit: percent\nkey,accuracy\na,50\nb,60\na,70\n",
            r"gt\.csv:5: duplicate key 'a'.*line 3",
        ),
        ("# unit: percent\nkey,accuracy\na,fifty\n", r"gt\.csv:3: key 'a'.*not a number"),
        ("# unit: percent\nkey,accuracy\na,nan\n", r"gt\.csv:3: key 'a'.*not finite"),
        ("# unit: percent\nkey,accuracy\na,inf\n", r"gt\.csv:3: key 'a'.*not finite"),
        ("# unit: percent\nkey,accuracy\na,50\nb,100.5\n", r"gt\.csv:4: key 'b'.*outside"),
        ("# unit: percent\nkey,accuracy\na,-1\n", r"gt\.csv:3: key 'a'.*outside"),
        ("# unit: fraction\nkey,accuracy\na,1.2\n", r"gt\.csv:3: key 'a'.*outside"),
        ("# unit: percent\nkey,accuracy\na\n", r"gt\.csv:3: 1 fields"),
        ("# unit: percent\nname,score\na,50\n", r"gt\.csv:2: unknown layout.*arch_str"),
        ("# unit: percent\nkey,accuracy\n", r"no rows"),
        ("# unit: percent\n", r"no header"),
        ("", r"no header"),
        ("index,arch_str,valid_acc,test_acc\n0,|a~0|,101,50\n", r"gt\.csv:2: key '\|a~0\|'"),
        ("# unit: percent\nkey,score\na,50\n", r"gt\.csv:2: default column 'accuracy'"),
        ("# unit: fraction\nkey,accuracy\na,0.9_1\n", r"gt\.csv:3: key 'a'.*not a number"),
        # two lines that say different things: neither is taken
        (
            "# unit: percent\n# unit: fraction\nkey,accuracy\na,0.5\n",
            r"gt\.csv:2: # unit: 'fraction' contradicts # unit: 'percent' on line 1",
        ),
        # a field too many: which column is the accuracy is no longer sure
        ("# unit: percent\nkey,accuracy\na,50\nb,60,7\n", r"gt\.csv:4: 3 fields, expected 2"),
        ("# unit: percent\nkey,accuracy,\na,50,\nb,60,7\n", r"gt\.csv:4: 3 fields, expected 2"),
        # a stray quote would swallow the rows up to the next quote into one field
        (
            '# unit: percent\nkey,accuracy\na,"50\nb,60\nc,70"\nd,80\n',
            r"gt\.csv:3: a quoted field runs over lines 3 to 5 \(a stray quote\?\)",
        ),
        # a form feed in a quoted key: one line, not two (the next line is counted right)
        ('# unit: fraction\nkey,accuracy\n"a\fb",0.5\nc,x\n', r"gt\.csv:4: key 'c'.*not a num"),
    ],
)
def test_read_errors_name_line(tmp_path, body, pattern):
    p = _write(tmp_path, body)
    with pytest.raises(GroundTruthError, match=pattern) as info:
        read_table(p)
    assert str(p) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_trailing_commas_are_not_fields(tmp_path):
    # a spreadsheet's export: a comma at the end of the header, of some rows, or of all
    for body in (
        "# unit: percent\nkey,accuracy,\na,50\nb,60,\n",
        "# unit: percent\nkey,accuracy\na,50,\nb,60,,\n",
    ):
        gt = read_table(_write(tmp_path, body))
        assert (gt["a"], gt["b"]) == (0.5, 0.6)


def test_a_quote_left_open_in_a_large_table_names_its_line(tmp_path):
    # the field runs on past the csv module's limit before the file ends
    p = _write(tmp_path, '# unit: percent\nkey,accuracy\n"a,50\n' + ("b" * 50 + ",60\n") * 3000)
    with pytest.raises(GroundTruthError, match=r"gt\.csv:3: unreadable CSV \(field larger"):
        read_table(p)


def test_validate_key_rejection(tmp_path):
    p = _write(tmp_path, "# unit: fraction\nkey,accuracy\ngood,0.5\nbad,0.6\n")

    def only_good(key: str) -> None:
        if key != "good":
            raise ValueError(f"{key} is not in the space")

    with pytest.raises(GroundTruthError, match=r"gt\.csv:4: key 'bad' rejected: bad is not in"):
        read_table(p, validate_key=only_good)
    assert len(read_table(p, validate_key=lambda k: None)) == 2


@pytest.mark.parametrize(
    ("space", "key", "hint"),
    [
        ("nb201", "0123456789abcdef0123456789abcdef", "looks like an NB101 hash"),
        (
            "nb101",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "looks like an NB201 cell",
        ),
    ],
)
def test_a_key_of_another_benchmark_says_which_it_looks_like(tmp_path, space, key, hint):
    from nasheur.spaces import get_space

    p = _write(tmp_path, f"# unit: fraction\nkey,accuracy\n{key},0.5\n")
    with pytest.raises(GroundTruthError, match=rf"gt\.csv:3: key .* rejected: .*\(it {hint}"):
        read_table(p, validate_key=get_space(space).validate_key)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        read_table(tmp_path / "absent.csv")


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path):
    from nasheur.groundtruth.table import declared_space

    p = tmp_path / "gt.csv"
    p.write_bytes(b"# unit: percent\nkey,accuracy\na,50\nb\xff,60\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:4: not UTF-8 text \(byte 0xff\)"):
        read_table(p)
    p.write_bytes(b"# space: nb\xff201\nkey,accuracy\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:1: not UTF-8"):
        declared_space(p)
    p.write_bytes(b"\xef\xbb\xbf# space: nb201\nkey,accuracy\n" + b"a,1\n" * 20000)  # BOM, long
    assert declared_space(p) == "nb201"


# ----------------------------------------------------------------------------- chance floor
# A percentage below half its dataset's chance level is a fraction among percentages: a
# constant predictor already scores chance (10% on CIFAR-10, 1% on CIFAR-100, 100/120% on
# ImageNet16-120), so half of it, 5%, 0.5% and 0.41667%, no classifier reaches from above.


def test_one_fraction_row_in_an_nb201_layout_table_is_refused(tmp_path):
    # 0.905 is 90.5% written as a fraction; 9.712 is the x-valid score of NB201's cells
    # without a path (a constant predictor): at chance, so real. The layout does not say its
    # dataset: a '# dataset:' line gives its floor, else the lowest of NB201's datasets holds
    head = "# dataset: cifar10-valid\nindex,arch_str,valid_acc,test_acc\n"
    ok = _write(tmp_path, head + "0,|a~0|,90.5,90.0\n1,|b~0|,9.712,10.0\n", "ok.csv")
    assert read_table(ok)["|b~0|"] == pytest.approx(0.09712)
    bad = _write(tmp_path, head + "0,|a~0|,90.5,90.0\n1,|b~0|,0.905,90.0\n2,|c~0|,80,80\n")
    where = r"gt\.csv:4: key '\|b~0\|': valid_acc = 0\.905% is below 5%"
    with pytest.raises(GroundTruthError, match=where + r".*cifar10.*fraction among percentages"):
        read_table(bad)
    assert read_table(bad, column="test_acc")["|b~0|"] == 0.9  # the other column is fine
    # the fraction first: named as soon as a percentage shows the table's unit
    first = _write(tmp_path, head + "0,|a~0|,0.905,90.0\n1,|b~0|,90.5,90.0\n", "first.csv")
    with pytest.raises(GroundTruthError, match=r"first\.csv:3: key '\|a~0\|': valid_acc = 0\.905"):
        read_table(first)
    # every value a fraction: the whole-table message, which says what to declare
    every = _write(tmp_path, head + "0,|a~0|,0.905,0.9\n1,|b~0|,0.8,0.8\n", "all.csv")
    with pytest.raises(GroundTruthError, match=r"all\.csv:2: .*no valid_acc exceeds 1"):
        read_table(every)
    # no dataset named: 0.905 may be a CIFAR-100 cell at chance, 0.3 is below any of NB201's
    plain = "index,arch_str,valid_acc,test_acc\n0,|a~0|,90.5,90.0\n"
    assert read_table(_write(tmp_path, plain + "1,|b~0|,0.905,90.0\n", "p1.csv"))["|b~0|"] > 0
    low = _write(tmp_path, plain + "1,|b~0|,0.3,90.0\n", "p2.csv")
    with pytest.raises(GroundTruthError, match=r"p2\.csv:3: .*0\.3% is below 0\.4167%.*ImageNet16"):
        read_table(low)


@needs_nb201
def test_the_audit_row_of_the_shared_table_in_fractions_is_refused(tmp_path):
    # the shared table is of cifar10-valid (its name says so; the layout does not)
    lines = NB201_CSV.read_text().splitlines()
    i, arch, valid, test = lines[2].split(",")
    lines[2] = ",".join([i, arch, str(float(valid) / 100), test])
    p = _write(tmp_path, "# dataset: cifar10-valid\n" + "\n".join(lines) + "\n", "mixed.csv")
    with pytest.raises(GroundTruthError, match=r"mixed\.csv:4: key .*valid_acc = 0\.9076"):
        read_table(p)
    assert len(read_table(NB201_CSV, dataset="cifar10-valid")) == 15625  # the real one loads


@pytest.mark.parametrize(
    ("dataset", "lowest_ok", "refused"),
    [
        ("cifar10", "5.0", "4.99"),
        ("cifar10-valid", "5.0", "0.9"),
        ("cifar100", "0.5", "0.49"),
        ("ImageNet16-120", "0.42", "0.41"),  # half of 100/120 is 0.41667
    ],
)
def test_chance_floor_per_dataset(tmp_path, dataset, lowest_ok, refused):
    table = "# unit: percent\n# dataset: {}\nkey,accuracy\na,60\nb,{}\n"
    ok = _write(tmp_path, table.format(dataset, lowest_ok), "ok.csv")
    assert read_table(ok)["b"] == pytest.approx(float(lowest_ok) / 100)
    bad = _write(tmp_path, table.format(dataset, refused))
    with pytest.raises(GroundTruthError, match=rf"gt\.csv:5: key 'b': accuracy = {refused}%"):
        read_table(bad)
    # the dataset given by the caller, for a table that does not name it
    plain = _write(tmp_path, f"# unit: percent\nkey,accuracy\na,60\nb,{refused}\n", "p.csv")
    with pytest.raises(GroundTruthError, match=r"p\.csv:4: key 'b'.*half the chance level"):
        read_table(plain, dataset=dataset)


def test_chance_floor_needs_a_known_dataset(tmp_path):
    # documented limit: with no dataset (or one of unknown chance level) only the whole-table
    # check runs, so one fraction among percentages passes
    for meta in ("", "# dataset: procedural\n"):
        p = _write(tmp_path, f"# unit: percent\n{meta}key,accuracy\na,90\nb,0.9\n")
        assert read_table(p)["b"] == pytest.approx(0.009)
    q = _write(tmp_path, "# unit: percent\n# dataset: cifar100\nkey,accuracy\na,60\n", "q.csv")
    with pytest.raises(GroundTruthError, match=r"q\.csv:2: .*dataset 'cifar100'.*'cifar10'"):
        read_table(q, dataset="cifar10")


def test_a_percentage_in_a_fraction_table_is_refused(tmp_path):
    # the other direction needs no chance floor: any real accuracy in percent exceeds 1
    p = _write(tmp_path, "# unit: fraction\n# dataset: cifar10\nkey,accuracy\na,0.9\nb,90.5\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:5: key 'b'.*outside \[0, 1\]"):
        read_table(p)
    # a fraction table is not held to the percent floor (its values are fractions)
    q = _write(tmp_path, "# unit: fraction\n# dataset: cifar10\nkey,accuracy\na,0.9\nb,0.1\n")
    assert read_table(q)["b"] == 0.1


# ----------------------------------------------------------------------------- audit additions


def test_a_comment_whose_name_has_spaces_is_no_metadata(tmp_path):
    # '# name: value' names one word; free text with a colon is a comment, and a converted
    # copy of the table (whose header write_table rewrites) must not choke on it
    from nasheur.groundtruth.convert import convert_file

    p = _write(tmp_path, "# made by: hand\n# unit: percent\nkey,accuracy\na,50\nb,60\n")
    gt = read_table(p)
    assert "made by" not in gt.meta and gt.meta["unit"] == "percent"
    out, _ = convert_file(p, tmp_path / "out.csv")
    assert read_table(out)["b"] == 0.6


def test_a_percent_table_topping_at_exactly_1_is_the_whole_table_message(tmp_path):
    # "no accuracy exceeds 1": a maximum of exactly 1 is no proof of percent, so the table is
    # refused as a whole (fractions), not by its row below the chance floor
    p = _write(tmp_path, "# unit: percent\n# dataset: cifar10\nkey,accuracy\na,0.9\nb,1\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:1: .*no accuracy exceeds 1"):
        read_table(p)


def test_the_first_of_several_fractions_among_percentages_is_named(tmp_path):
    p = _write(tmp_path, "# unit: percent\n# dataset: cifar10\nkey,accuracy\na,0.9\nb,0.8\nc,90\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:4: key 'a': accuracy = 0\.9%"):
        read_table(p)


def test_declared_space_of_a_large_table_with_a_character_across_the_cut(tmp_path):
    # the head read is 64 KiB; a two-byte character whose first byte is the last byte read
    # must not make the head undecodable
    from nasheur.groundtruth.table import declared_space

    head = b"# space: nb201\n# unit: fraction\nkey,accuracy\n"
    pad = (1 << 16) - 1 - len(head) - len(",0.5\n")
    body = head + b"x" * pad + b",0.5\n" + "\u00e9,0.5\n".encode()
    assert body[(1 << 16) - 1 : (1 << 16) + 1] == "\u00e9".encode()
    p = tmp_path / "gt.csv"
    p.write_bytes(body + b"y,0.5\n" * 10)
    assert declared_space(p) == "nb201"


def test_declared_space_of_the_nb201_layout_with_more_columns(tmp_path):
    # read_table takes the layout by its first four columns; so does the space check
    from nasheur.groundtruth.table import declared_space

    p = _write(tmp_path, "index,arch_str,valid_acc,test_acc,train_acc\n0,|a~0|,90,89,99\n")
    assert read_table(p).meta["space"] == "nb201"
    assert declared_space(p) == "nb201"


def test_a_quoted_field_over_two_lines_names_them(tmp_path):
    p = _write(tmp_path, '# unit: percent\nkey,accuracy\na,"50\nb",60\nc,70\n')
    with pytest.raises(GroundTruthError, match=r"gt\.csv:3: a quoted field runs over lines 3 to 4"):
        read_table(p)


def test_own_layout_key_column_anywhere_in_the_header(tmp_path):
    # the header must contain `key` and the value column; other columns are ignored
    p = _write(tmp_path, "# unit: percent\nnote,key,accuracy\nx,a,50\ny,b,60\n")
    gt = read_table(p)
    assert gt.keys == ("a", "b") and gt["b"] == 0.6


def test_the_key_column_is_no_value_column(tmp_path):
    # numeric keys would read as accuracies; the key column is not among those offered
    p = _write(tmp_path, "# unit: percent\nkey,accuracy\n7,50\n8,60\n")
    with pytest.raises(
        GroundTruthError,
        match=r"gt\.csv:2: column 'key' holds the keys; available columns: accuracy",
    ):
        read_table(p, column="key")


def test_a_repeated_column_name_is_refused(tmp_path):
    # two 'accuracy' columns: which one is meant is not sure
    p = _write(tmp_path, "# unit: percent\nkey,accuracy,accuracy\na,50,60\n")
    with pytest.raises(GroundTruthError, match=r"gt\.csv:2: repeated column name"):
        read_table(p)


def test_write_refuses_what_would_not_read_back(tmp_path):
    # read_table strips fields and splits '# name: value' at the first colon: a padded key
    # or a meta name with a colon would come back as something else
    p = tmp_path / "x.csv"
    for key in (" a", "a "):
        with pytest.raises(ValueError, match="padded"):
            write_table(p, [key], [0.5], meta={})
    with pytest.raises(ValueError, match="unwritable meta entry"):
        write_table(p, ["a"], [0.5], meta={"a:b": "c"})
    assert not p.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from nasheur.io import atomic_path

    p = tmp_path / "gt.csv"
    write_table(p, ["a"], [0.5], meta={})
    before = p.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(p) as tmp:
        tmp.write_text("half a table")
        raise RuntimeError("interrupted")
    assert p.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["gt.csv"]


# ----------------------------------------------------------------------------- nasheur.io (the
# atomic writes that write_table and the job records use)


def test_a_written_table_is_readable_by_others(tmp_path):
    # the temporary file is made 0600; the table it becomes is an ordinary file, 0644 under
    # the common umask
    import os

    p = tmp_path / "gt.csv"
    old = os.umask(0o022)
    try:
        write_table(p, ["a"], [0.5], meta={})
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644


def test_only_atomic_path_temporaries_of_the_named_files_are_removed(tmp_path):
    import tempfile

    from nasheur.io import remove_stale_temporaries

    # what atomic_path leaves when killed: tempfile's 8 random characters between the dots
    fd, left = tempfile.mkstemp(prefix=".metrics.json.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    keep = [
        ".metrics.json.backup.tmp",  # a user's file: 6 characters
        ".metrics.json.abcdefghij.tmp",  # 10
        ".other.json.abcdefgh.tmp",  # another file's
    ]
    for name in keep:
        (tmp_path / name).write_text("mine")
    assert remove_stale_temporaries(tmp_path, ("metrics.json",)) == [Path(left)]
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(keep)


def test_json_records_hold_null_for_non_finite_numbers(tmp_path):
    # JSON has no NaN: a metric that is nan (a tau over ties) is written as null
    import json

    from nasheur.io import atomic_write_json, read_json

    p = tmp_path / "m.json"
    atomic_write_json(p, {"tau": float("nan"), "inf": float("-inf"), "x": np.float64(0.5)})
    assert json.loads(p.read_text()) == {"tau": None, "inf": None, "x": 0.5}
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(p)
