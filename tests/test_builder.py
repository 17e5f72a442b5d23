"""The ground-truth builder: stand-alone training of a seeded sample, resumable, into a table."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shlex
import signal

import numpy as np
import pytest
import torch

from nasheur.groundtruth import builder
from nasheur.groundtruth.builder import (
    BuildMismatchError,
    BuildSettings,
    build,
    build_main,
    buildable_spaces,
    mean_pairwise_kendall,
    per_seed_path,
    progress_path,
    sample_architectures,
    spread_points,
)
from nasheur.groundtruth.table import read_table
from nasheur.spaces.nb201 import parse

# three architectures, two seeds, one epoch of 48 tiny images: about a second in all
TINY = BuildSettings(
    space="embedded",
    archs=3,
    seeds=(0, 1),
    train_images=48,
    test_images=32,
    image_size=8,
    epochs=1,
    batch_size=16,
    macro=(("channels", 4), ("layers", 1)),
)
TINY_ARGS = [
    "--archs", "3",
    "--seeds", "0,1",
    "--train-images", "48",
    "--test-images", "32",
    "--image-size", "8",
    "--epochs", "1",
    "--batch-size", "16",
    "--macro", "channels=4",
    "--macro", "layers=1",
]  # fmt: skip


def _count_trainings(monkeypatch) -> list[tuple[str, int]]:
    calls: list[tuple[str, int]] = []
    real = builder.train_standalone

    def counting(space, key, seed, settings, data):
        calls.append((key, seed))
        return real(space, key, seed, settings, data)

    monkeypatch.setattr(builder, "train_standalone", counting)
    return calls


def _results(path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[1:] if line.strip()]


def test_build_writes_a_table_with_its_statistics(tmp_path):
    out = tmp_path / "gt.csv"
    result = build(out, TINY, log=None)
    assert result is not None and result.trained == 6
    gt = read_table(out, validate_key=parse)
    assert len(gt) == 3 and all(parse(k) for k in gt.keys)
    m = gt.meta
    assert m["archs"] == "3" and m["seeds"] == "0 1" and m["epochs"] == "1"
    assert m["per_seed"] == "gt.per-seed.csv"
    assert "procedural" in m["dataset"] and "test_seed=1" in m["dataset"]
    assert "nesterov" in m["protocol"] and "lr 0.1" in m["protocol"]
    assert m["regenerate"].startswith("python -m nasheur.groundtruth build ")
    for name in ("seed_kendall_tau", "spread_p90_p10"):
        float(m[name])  # a number (the tau of three tiny runs may be nan on ties)
    # the sidecar: one row per (architecture, seed); the table holds their mean
    with open(per_seed_path(out), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {int(r["seed"]) for r in rows} == {0, 1}
    for key in gt.keys:
        accs = [float(r["accuracy"]) for r in rows if r["key"] == key]
        assert len(accs) == 2 and gt[key] == pytest.approx(np.mean(accs), abs=0)
    assert float(m["spread_p90_p10"]) == pytest.approx(spread_points(gt.acc), abs=0.005)


def test_killed_build_resumes_without_redoing_and_matches(tmp_path, monkeypatch):
    whole = build(tmp_path / "a" / "gt.csv", TINY, command="regen", log=None)
    assert whole is not None

    out = tmp_path / "b" / "gt.csv"
    assert build(out, TINY, limit=2, command="regen", log=None) is None
    first = [(r["key"], r["seed"]) for r in _results(progress_path(out))]
    assert len(first) == 2 and not out.exists()

    calls = _count_trainings(monkeypatch)
    resumed = build(out, TINY, command="regen", log=None)
    assert resumed is not None and resumed.trained == 4
    assert len(calls) == 4 and not set(calls) & set(first)
    # the interrupted build's table and sidecar are those of the uninterrupted one
    assert out.read_bytes() == (tmp_path / "a" / "gt.csv").read_bytes()
    assert per_seed_path(out).read_bytes() == per_seed_path(tmp_path / "a" / "gt.csv").read_bytes()

    calls.clear()  # a finished build only rewrites its outputs
    assert build(out, TINY, command="regen", log=None) is not None and calls == []


def test_a_half_written_last_line_is_dropped(tmp_path):
    out = tmp_path / "gt.csv"
    build(out, TINY, limit=1, log=None)
    with open(progress_path(out), "a") as f:
        f.write('{"accuracy": 0.5, "key": "|none~0|+')  # a crash mid-write
    result = build(out, TINY, log=None)
    assert result is not None and result.trained == 5
    assert len(_results(progress_path(out))) == 6


def test_the_regenerate_line_quotes_what_a_shell_would_split():
    settings = BuildSettings(**{**TINY.__dict__, "macro": (("stem", "conv 3x3"),)})
    line = builder._cli_args(settings, "my tables/t.csv")
    assert shlex.split(line)[-4:] == ["--macro", "stem=conv 3x3", "--out", "my tables/t.csv"]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("garbage", "not a result line"),
        ('{"key": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "seed": 0}', "no 'accuracy'"),
        ('{"key": "k", "seed": 0, "accuracy": NaN}', "accuracy nan"),
    ],
)
def test_a_damaged_progress_line_is_named(tmp_path, line, said):
    out = tmp_path / "gt.csv"
    build(out, TINY, limit=1, log=None)
    with open(progress_path(out), "a") as f:
        f.write(line + "\n")
    with pytest.raises(BuildMismatchError, match=rf"progress\.jsonl:3: .*{said}"):
        build(out, TINY, log=None)


def test_a_macro_setting_f_proxy_does_not_take_leaves_no_progress_file(tmp_path, capsys):
    out = tmp_path / "gt.csv"
    with pytest.raises(SystemExit) as exit_:  # an option error, as argparse's own
        build_main(["--out", str(out), *TINY_ARGS, "--macro", "foo=1"])
    assert exit_.value.code == 2 and "foo" in capsys.readouterr().err
    assert not progress_path(out).exists()  # the corrected command starts cleanly
    assert build_main(["--out", str(out), "--quiet", *TINY_ARGS]) == 0


def test_space_choices_are_the_spaces_a_build_can_train(tmp_path, capsys):
    # DARTS-NDS has no sample of unique cells nor stand-alone nets here: not offered at all,
    # rather than offered and refused after parsing
    assert set(buildable_spaces()) == {"nb101", "nb201", "embedded"}
    with pytest.raises(SystemExit) as exit_:
        build_main(["--out", str(tmp_path / "gt.csv"), "--space", "darts_nds"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'darts_nds'" in err
    assert "darts_nds" not in err.split("choose from", 1)[1]


@pytest.mark.parametrize(
    ("macro", "said"),
    [
        ("num_classes=5", "--macro num_classes=5 contradicts --num-classes 10"),
        ("channels=0", "--macro channels=0: expects an integer >= 1 (default 8)"),
        ("width=abc", "unknown embedded macro settings ['width']"),  # the network says so
        ("layers=2.5", "--macro layers=2.5: expects an integer >= 1 (default 3)"),
        # not --macro, but known before any training too
        ("--archs=7000", "--archs 7000: embedded has 6,466 unique architectures"),
        ("--batch-size=64", "--batch-size 64: larger than the 48 training images"),
    ],
)
def test_a_macro_value_the_network_cannot_take_leaves_no_progress_file(
    tmp_path, capsys, macro, said
):
    out = tmp_path / "gt.csv"
    args = TINY_ARGS[:-4]  # without its --macro settings
    assert "--macro" not in args
    given = [macro] if macro.startswith("--") else ["--macro", macro]
    with pytest.raises(SystemExit) as exit_:  # an option error: status 2, as argparse's own
        build_main(["--out", str(out), *args, *given])
    assert exit_.value.code == 2 and said in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # said before any progress file
    # a key given twice is an option error (status 2), whatever its values
    with pytest.raises(SystemExit) as exit_:
        build_main(["--out", str(out), *TINY_ARGS, "--macro", "channels=abc"])
    assert exit_.value.code == 2
    assert "--macro channels given more than once" in capsys.readouterr().err


def test_changed_settings_refuse_to_mix(tmp_path, capsys):
    out = tmp_path / "gt.csv"
    build(out, TINY, limit=1, log=None)
    other = BuildSettings(**{**TINY.__dict__, "epochs": 2})
    with pytest.raises(BuildMismatchError, match="epochs"):
        build(out, other, log=None)
    # the command line says so and fails
    args = ["--out", str(out), *TINY_ARGS, "--lr", "0.05"]
    assert build_main(args) == 1
    assert "refusing to mix" in capsys.readouterr().err
    assert len(_results(progress_path(out))) == 1  # nothing was added


def test_command_line_limit_then_resume(tmp_path, capsys):
    out = tmp_path / "cli.csv"
    progress = tmp_path / "elsewhere" / "cli.progress.jsonl"
    args = ["--out", str(out), "--progress", str(progress), "--quiet", *TINY_ARGS]
    assert build_main([*args, "--limit", "4"]) == 3
    assert "rerun the same command" in capsys.readouterr().out
    assert build_main(args) == 0
    text = capsys.readouterr().out
    assert "wrote 3 architectures x 2 seeds" in text
    gt = read_table(out)
    assert len(gt) == 3 and not progress_path(out).exists() and progress.exists()
    # the software is recorded (the results are reproducible on the same versions)
    assert f"torch {torch.__version__}" in gt.meta["software"]
    assert f"numpy {np.__version__}" in gt.meta["software"]
    # the recorded command rebuilds the same settings
    regen = gt.meta["regenerate"].split()
    assert regen[:4] == ["python", "-m", "nasheur.groundtruth", "build"]
    parsed = builder.settings_from_args(builder._parser().parse_args(regen[4:]))
    assert parsed == TINY


def test_any_space_with_standalone_and_sample_unique(tmp_path):
    settings = BuildSettings(**{**TINY.__dict__, "space": "nb201", "archs": 2})
    result = build(tmp_path / "nb201.csv", settings, log=None)
    assert result is not None and len(read_table(tmp_path / "nb201.csv")) == 2


def test_sample_is_seeded_and_unique():
    from nasheur.spaces.embedded import EmbeddedSpace

    space = EmbeddedSpace()
    keys = sample_architectures(space, 40, seed=3)
    assert keys == sample_architectures(space, 40, seed=3)
    assert keys != sample_architectures(space, 40, seed=4)
    assert len({space.unique_key(k) for k in keys}) == 40


def test_statistics():
    per_seed = np.array([[0.1, 0.2], [0.2, 0.1], [0.3, 0.4], [0.4, 0.3]])
    # pairs: 2 discordant, 4 concordant of 6 -> tau-b 1/3
    assert mean_pairwise_kendall(per_seed) == pytest.approx(1 / 3)
    three = np.column_stack([per_seed, per_seed[:, 0]])
    assert mean_pairwise_kendall(three) == pytest.approx((1 / 3 + 1 + 1 / 3) / 3)
    assert spread_points(np.linspace(0.0, 1.0, 11)) == pytest.approx(80.0)
    assert math.isnan(mean_pairwise_kendall(per_seed[:, :1]))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="data_seed and test_seed"):
        BuildSettings(data_seed=1, test_seed=1)
    with pytest.raises(ValueError, match="dataset"):
        BuildSettings(dataset="cifar10")
    with pytest.raises(ValueError, match="seeds"):
        BuildSettings(seeds=(0, 0))
    # NB201 cells' networks halve the image twice (tests/test_config.py shows the forward)
    with pytest.raises(ValueError, match="image_size=10 does not fit search space embedded"):
        BuildSettings(image_size=10)
    assert BuildSettings(space="nb101", image_size=10).image_size == 10


def test_a_second_build_of_the_same_progress_file_is_refused(tmp_path, capsys):
    # two builds at once would both train the results still missing
    from nasheur.jobguard import hold_folder

    out = tmp_path / "gt.csv"
    progress = progress_path(out)
    with hold_folder(tmp_path, lock=f"{progress.name}.lock"):
        with pytest.raises(builder.BuildLocked, match="another build"):
            build(out, TINY, limit=1, log=None)
        assert build_main(["--out", str(out), "--quiet", *TINY_ARGS]) == 1
    assert "another build" in capsys.readouterr().err
    assert not progress.exists()  # nothing was trained
    build(out, TINY, limit=1, log=None)  # released: it runs
    assert len(_results(progress)) == 1


@pytest.mark.parametrize(("how", "status"), [("Ctrl-C", 130), ("SIGTERM", 143)])
def test_a_stopped_build_says_so_and_the_same_command_continues(
    tmp_path, monkeypatch, capsys, how, status
):
    out = tmp_path / "gt.csv"
    real = builder.train_standalone
    calls: list[tuple[str, int]] = []

    def stopping(space, key, seed, settings, data):
        calls.append((key, seed))
        if len(calls) == 3:  # two results are in the progress file
            if how == "Ctrl-C":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
        return real(space, key, seed, settings, data)

    monkeypatch.setattr(builder, "train_standalone", stopping)
    previous = signal.getsignal(signal.SIGTERM)
    assert build_main(["--out", str(out), "--quiet", *TINY_ARGS]) == status
    assert signal.getsignal(signal.SIGTERM) is previous
    err = capsys.readouterr().err
    assert f"stopped by {how}; the results so far are kept: rerun the same command" in err
    assert "Traceback" not in err and not out.exists()
    calls.clear()
    monkeypatch.setattr(builder, "train_standalone", lambda *a: calls.append(a[1:3]) or real(*a))
    assert build_main(["--out", str(out), "--quiet", *TINY_ARGS]) == 0
    assert len(calls) == 3 * 2 - 2  # the two kept results are not trained again


def test_a_loss_not_finite_in_any_batch_is_refused(monkeypatch):
    """A non-finite loss in the first batch of the epoch, whose gradients stay finite (the
    weights and the last batch's loss look fine), still stops the training."""
    import torch
    import torch.nn.functional as F

    from nasheur.spaces.embedded import EmbeddedSpace

    real, calls = F.cross_entropy, []

    def first_inf(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss + torch.tensor(math.inf) if len(calls) == 1 else loss

    monkeypatch.setattr(F, "cross_entropy", first_inf)
    space = EmbeddedSpace()
    key = sample_architectures(space, 1, seed=0)[0]
    with pytest.raises(FloatingPointError, match="not finite in epoch 1"):
        builder.train_standalone(space, key, 0, TINY, builder._make_data(TINY))
    assert len(calls) == TINY.train_images // TINY.batch_size  # it ran the epoch to its end


def test_a_diverged_training_is_one_line_and_keeps_the_results(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert build_main([*TINY_ARGS, "--lr", "1e30", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not finite in epoch 1" in err and "--lr" in err
    assert "Traceback" not in err and not out.exists()


# ----------------------------------------------------------------------------- audit additions


def _prepared_build(tmp_path, settings):
    """`settings`' build with every result written into its progress file by hand (accuracy
    (10 + 20 i + 5 seed) / 100 for the i-th architecture of the sample): no training."""
    from nasheur.spaces.embedded import EmbeddedSpace

    out = tmp_path / "gt.csv"
    assert build(out, settings, limit=0, log=None) is None  # the settings line only
    keys = sample_architectures(EmbeddedSpace(), settings.archs, seed=settings.arch_seed)
    accs = {(k, s): (10 + 20 * i + 5 * s) / 100 for i, k in enumerate(keys) for s in settings.seeds}
    with open(progress_path(out), "a") as f:
        for (key, seed), acc in accs.items():
            f.write(json.dumps({"key": key, "seed": seed, "accuracy": acc, "seconds": 0.1}) + "\n")
    return out, keys, accs


def test_a_build_writes_each_result_under_its_seed_and_a_command_that_remakes_it(tmp_path):

    settings = BuildSettings(
        **{
            **TINY.__dict__,
            "lr": 0.05,
            "weight_decay": 1e-3,
            "augment": True,
            "arch_seed": 2,
            "test_seed": 7,
            "macro": (("layers", 1), ("channels", 4)),
        }
    )
    # the order of the --macro options determines nothing
    assert settings == BuildSettings(
        **{**settings.__dict__, "macro": (("channels", 4), ("layers", 1))}
    )
    out, keys, accs = _prepared_build(tmp_path, settings)
    result = build(out, settings, log=None)
    assert result is not None and result.trained == 0
    with open(per_seed_path(out), newline="") as f:
        rows = {(r["key"], int(r["seed"])): float(r["accuracy"]) for r in csv.DictReader(f)}
    assert rows == accs
    gt = read_table(out)
    for k in keys:
        assert gt[k] == pytest.approx(np.mean([accs[(k, s)] for s in settings.seeds]), abs=1e-15)
    regen = shlex.split(gt.meta["regenerate"])
    assert regen[:4] == ["python", "-m", "nasheur.groundtruth", "build"]
    parsed = builder.settings_from_args(builder._parser().parse_args(regen[4:]))
    assert parsed == settings


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('{"key": "KEY", "seed": 0, "accuracy": 1.5}', r":8: not a result line \(accuracy 1\.5"),
        ('{"key": "not-in-the-sample", "seed": 0, "accuracy": 0.5}', "outside this build"),
        (
            '{"key": 5, "seed": 0, "accuracy": 0.5}',
            r":8: not a result line \(accuracy 0\.5 of key 5",
        ),
        ('{"key": "KEY", "seed": 0, "accuracy": -0.5}', r":8: not a result line \(accuracy -0\.5"),
        # int() filed these under seed 0 and 1, and raised OverflowError (a traceback)
        ('{"key": "KEY", "seed": 0.5, "accuracy": 0.5}', r":8: not a result line \(seed 0\.5"),
        ('{"key": "KEY", "seed": true, "accuracy": 0.5}', r":8: not a result line \(seed True"),
        ('{"key": "KEY", "seed": 1e400, "accuracy": 0.5}', r":8: not a result line \(seed inf"),
        ('{"key": "KEY", "seed": 0, "accuracy": 1' + "0" * 400 + "}", r":8: not a result line"),
    ],
    ids=[
        "accuracy-above-1",
        "key-outside",
        "key-number",
        "accuracy-negative",
        "seed-fraction",
        "seed-bool",
        "seed-infinite",
        "accuracy-past-float",
    ],
)
def test_a_progress_file_with_results_this_build_cannot_have_is_refused(tmp_path, line, said):
    out, keys, _ = _prepared_build(tmp_path, TINY)
    with open(progress_path(out), "a") as f:
        f.write(line.replace("KEY", keys[0]) + "\n")
    with pytest.raises(BuildMismatchError, match=said):
        build(out, TINY, log=None)
    assert not out.exists()


def test_a_result_for_a_seed_outside_the_build_is_refused(tmp_path):
    # it counted towards the results done: with one missing, the build went on to write and
    # failed on the missing result (a bare KeyError) instead of stopping at --limit
    out, keys, _ = _prepared_build(tmp_path, TINY)
    path = progress_path(out)
    *lines, _ = path.read_text().splitlines(keepends=True)
    lines.append(json.dumps({"key": keys[0], "seed": 7, "accuracy": 0.5}) + "\n")
    path.write_text("".join(lines))
    with pytest.raises(BuildMismatchError, match=r"seeds outside this build \(\[7\]\)"):
        build(out, TINY, limit=0, log=None)
    assert not out.exists()


def test_a_progress_file_of_another_format_is_refused(tmp_path):
    out = tmp_path / "gt.csv"
    assert build(out, TINY, limit=0, log=None) is None
    path = progress_path(out)
    first, *rest = path.read_text().splitlines(keepends=True)
    header = json.loads(first)
    assert header["format"] == builder.PROGRESS_FORMAT
    header["format"] = builder.PROGRESS_FORMAT + 1
    path.write_text(json.dumps(header) + "\n" + "".join(rest))
    with pytest.raises(BuildMismatchError, match=r"other settings \(differing: format\)"):
        build(out, TINY, log=None)


def test_the_learning_rate_follows_a_per_step_cosine_from_its_full_value(monkeypatch):
    # P_proxy: lr 0.1 decayed by a per-step cosine to zero, as torch's CosineAnnealingLR
    # stepped once per batch: the first step at the full rate
    from nasheur.spaces.embedded import EmbeddedSpace

    settings = BuildSettings(**{**TINY.__dict__, "epochs": 2})
    steps = settings.epochs * (settings.train_images // settings.batch_size)
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=settings.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(probe, T_max=steps)
    expected = []
    for _ in range(steps):
        expected.append(probe.param_groups[0]["lr"])
        probe.step()
        schedule.step()
    seen = []
    real_step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    space = EmbeddedSpace()
    key = sample_architectures(space, 1, seed=0)[0]
    builder.train_standalone(space, key, 0, settings, builder._make_data(settings))
    assert expected[0] == settings.lr and len(seen) == steps
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_a_batch_of_all_the_training_images_is_allowed():
    whole = BuildSettings(**{**TINY.__dict__, "batch_size": TINY.train_images})
    assert len(builder.check_build(whole)[1]) == TINY.archs
    with pytest.raises(ValueError, match="--batch-size 49: larger than the 48 training images"):
        builder.check_build(BuildSettings(**{**TINY.__dict__, "batch_size": 49}))


def test_the_progress_file_of_a_table_named_in_capitals():
    assert progress_path("tables/GT.CSV").as_posix() == "tables/GT.progress.jsonl"
    assert per_seed_path("tables/GT.CSV").as_posix() == "tables/GT.per-seed.csv"


# -------------------------------------------------------------- settings, options and progress


@pytest.mark.parametrize(
    ("change", "said"),
    [
        *[
            ({name: 0}, f"{name} must be >= 1, got 0")
            for name in ("archs", "train_images", "test_images", "epochs", "batch_size", "threads")
        ],
        ({"seeds": ()}, "seeds must be distinct and non-empty"),
        ({"seeds": (0, -1)}, r"seeds must be >= 0, got \(0, -1\)"),
        *[
            ({name: -1}, f"{name} must be >= 0, got -1")
            for name in ("arch_seed", "data_seed", "test_seed")
        ],
    ],
)
def test_settings_out_of_range_are_named(change, said):
    with pytest.raises(ValueError, match=said):
        BuildSettings(**{**TINY.__dict__, **change})


def test_synthetic_data_may_share_the_test_seed():
    # synthetic data splits one generated set into train and test: one seed draws both, so
    # only procedural data (two sets, each from its own seed) needs two different seeds
    settings = BuildSettings(**{**TINY.__dict__, "dataset": "synthetic", "test_seed": 0})
    assert settings.data_seed == settings.test_seed == 0


def test_synthetic_header_does_not_name_a_test_seed_it_never_used(tmp_path):
    # synthetic test images are the tail of the data_seed set: --test-seed changes nothing,
    # so the table's dataset line must not claim the test images were drawn with it
    settings = BuildSettings(**{**TINY.__dict__, "dataset": "synthetic", "test_seed": 7})
    result = build(tmp_path / "gt.csv", settings, log=None)
    assert "test_seed" not in result.meta["dataset"]
    assert "test_from=data_seed" in result.meta["dataset"]


def test_tables_with_other_suffixes_keep_them_in_their_progress_file():
    # only .csv is dropped: gt.v1 and gt.v2 must not share one progress file
    assert progress_path("tables/gt.v1").as_posix() == "tables/gt.v1.progress.jsonl"
    assert progress_path("tables/gt.v2") != progress_path("tables/gt.v1")
    assert per_seed_path("tables/gt.v1").as_posix() == "tables/gt.v1.per-seed.csv"


class _FewCells:
    """A space of `n` unique cells, each drawn under two keys (`i` and `i'`): a stand-in
    whose sample must skip cells it drew already."""

    name = "few"

    def __init__(self, n: int) -> None:
        self.n = n
        self.macro_defaults = {"channels": 8, "affine": True}

    def num_unique(self) -> int:
        return self.n

    def sample_unique(self, rng) -> str:
        i = int(rng.integers(self.n))
        return f"{i}'" if rng.random() < 0.5 else str(i)

    def unique_key(self, arch: str) -> str:
        return arch.rstrip("'")

    def key(self, arch: str) -> str:
        return arch

    def standalone(self, arch: str, **macro) -> torch.nn.Module:
        return torch.nn.Identity()


def test_the_sample_holds_each_unique_cell_once(monkeypatch):
    keys = sample_architectures(_FewCells(3), 3, seed=0)
    assert sorted(k.rstrip("'") for k in keys) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="could not draw 4 distinct architectures of few"):
        sample_architectures(_FewCells(3), 4, seed=0)
    # a build may take every unique cell of a space, and no more
    import nasheur.spaces

    monkeypatch.setattr(nasheur.spaces, "get_space", lambda name: _FewCells(3))
    assert len(builder.check_build(BuildSettings(**{**TINY.__dict__, "archs": 3}))[1]) == 3
    with pytest.raises(ValueError, match="--archs 4: embedded has 3 unique architectures"):
        builder.check_build(BuildSettings(**{**TINY.__dict__, "archs": 4}))


@pytest.mark.parametrize(
    ("macro", "said"),
    [
        (("affine", 1), "--macro affine=1: expects true or false (default True)"),
        (("channels", True), "--macro channels=True: expects an integer >= 1 (default 8)"),
    ],
)
def test_a_macro_value_of_another_type_than_its_default_is_refused(macro, said):
    # `--macro channels=true` reads as a bool, which Python counts as the integer 1
    settings = BuildSettings(**{**TINY.__dict__, "macro": (macro,)})
    with pytest.raises(ValueError, match=re.escape(said)):
        builder._check_macro(_FewCells(3), settings)
    builder._check_macro(
        _FewCells(3), BuildSettings(**{**TINY.__dict__, "macro": (("affine", False),)})
    )


def test_a_macro_key_the_space_does_not_list_leaves_the_others_checked():
    # keys are sorted: the unknown "aaa" (the network says whether it takes it) comes first
    settings = BuildSettings(**{**TINY.__dict__, "macro": (("aaa", 1), ("channels", 0))})
    with pytest.raises(ValueError, match=r"--macro channels=0: expects an integer >= 1"):
        builder._check_macro(_FewCells(3), settings)


def test_the_network_has_as_many_outputs_as_the_data_has_classes():
    from nasheur.spaces.embedded import EmbeddedSpace

    space = EmbeddedSpace()
    settings = BuildSettings(**{**TINY.__dict__, "num_classes": 5})
    key = sample_architectures(space, 1, seed=0)[0]
    net = builder._standalone(space, key, settings)
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 5)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "no settings line"),
        (b'{"format": 1, "sett', "no settings line"),  # a crash while writing it
    ],
    ids=["empty", "cut-settings-line"],
)
def test_a_progress_file_without_its_settings_line_is_refused(tmp_path, content, said):
    out = tmp_path / "gt.csv"
    progress_path(out).write_bytes(content)
    with pytest.raises(BuildMismatchError, match=said):
        build(out, TINY, log=None)


def test_blank_lines_in_the_progress_file_are_skipped(tmp_path):
    out, keys, accs = _prepared_build(tmp_path, TINY)
    text = progress_path(out).read_text().splitlines(keepends=True)
    progress_path(out).write_text("".join([text[0], "\n", *text[1:3], "  \n", *text[3:]]))
    result = build(out, TINY, log=None)
    assert result is not None and result.trained == 0
    assert read_table(out)[keys[0]] == pytest.approx((accs[(keys[0], 0)] + accs[(keys[0], 1)]) / 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("flag=true", True),
        ("flag=False", False),
        ("channels=4", 4),
        ("drop=0.25", 0.25),
        ("name=wide", "wide"),
        (" layers = 2 ", 2),
    ],
)
def test_macro_options_read_as_bool_int_float_or_text(text, value):
    name, got = builder._macro(text)
    assert name == text.split("=")[0].strip() and got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("parse", "text", "said"),
    [
        (builder._macro, "channels", "expects KEY=VALUE"),
        (builder._macro, " =4", "expects KEY=VALUE"),
        (builder._seeds, "0,0", "expects distinct seeds"),
        (builder._seeds, ",", "expects distinct seeds, at least one"),
        (builder._seeds, "0,-1", "expects seeds >= 0"),
        (builder._seeds, "0,x", "expects comma-separated integers"),
    ],
)
def test_option_values_are_refused_in_the_option_s_words(parse, text, said):
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        parse(text)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--data-seed", "3", "--test-seed", "3"], "--data-seed and --test-seed must differ"),
        (["--num-classes", "NMAX"], "--num-classes NMAX: procedural data has at most"),
        (["--image-size", "4"], "--image-size 4: procedural images are >= 8"),
        (
            ["--image-size", "10"],
            "--image-size 10: search space embedded's networks take a multiple of 4",
        ),
    ],
    ids=["same-seeds", "classes", "image-small", "image-multiple"],
)
def test_options_that_do_not_fit_together_name_the_options(tmp_path, extra, said):
    from nasheur.data.procedural import MAX_CLASSES

    too_many = str(MAX_CLASSES + 1)
    argv = ["--out", str(tmp_path / "gt.csv"), *[a.replace("NMAX", too_many) for a in extra]]
    args = builder._parser().parse_args(argv)
    with pytest.raises(ValueError, match=re.escape(said.replace("NMAX", too_many))):
        builder.settings_from_args(args)
    # synthetic data: one set split in two (one seed) and images down to 4 pixels
    args = builder._parser().parse_args(
        [
            *argv[:2],
            "--dataset",
            "synthetic",
            "--data-seed",
            "3",
            "--test-seed",
            "3",
            "--image-size",
            "4",
        ]
    )
    assert builder.settings_from_args(args).image_size == 4


def test_data_the_generator_refuses_leaves_no_progress_file_behind(tmp_path):
    # a progress file made before the data would hold the refused settings, and the
    # corrected build would then be refused as another build's
    out = tmp_path / "gt.csv"
    bad = BuildSettings(**{**TINY.__dict__, "num_classes": 11, "archs": 1, "seeds": (0,)})
    with pytest.raises(ValueError, match="num_classes"):
        build(out, bad, log=None)
    assert not progress_path(out).exists()
    good = BuildSettings(**{**TINY.__dict__, "archs": 1, "seeds": (0,)})
    assert build(out, good, log=None) is not None


def test_images_beyond_memory_are_said_with_the_options(tmp_path, monkeypatch):
    from nasheur import data

    def refuse(*args):
        raise MemoryError

    monkeypatch.setitem(data.GENERATED, "procedural", (refuse, *data.GENERATED["procedural"][1:]))
    out = tmp_path / "gt.csv"
    with pytest.raises(
        ValueError, match=r"--train-images 48 and --test-images 32 of --image-size 8"
    ):
        build(out, TINY, log=None)
    assert not progress_path(out).exists()


def test_a_progress_file_without_results_takes_the_corrected_settings(tmp_path, monkeypatch):
    # the first training diverged (or ran out of memory): the progress file holds its
    # settings line alone, and the build with a lower --lr must not be refused as another's
    out = tmp_path / "gt.csv"
    real = builder.train_standalone

    def diverge(*args, **kwargs):
        raise FloatingPointError("loss is nan")

    monkeypatch.setattr(builder, "train_standalone", diverge)
    with pytest.raises(FloatingPointError):
        build(out, BuildSettings(**{**TINY.__dict__, "lr": 10.0}), log=None)
    monkeypatch.setattr(builder, "train_standalone", real)
    good = BuildSettings(**{**TINY.__dict__, "archs": 1, "seeds": (0,)})
    assert build(out, good, log=None) is not None
    # a file that holds results of other settings is still refused
    with pytest.raises(BuildMismatchError, match="other settings"):
        build(out, BuildSettings(**{**good.__dict__, "lr": 0.05}), log=None)
