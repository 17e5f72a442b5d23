"""What guards a running job (src/nasheur/jobguard.py) on its own: the folder lock as a second
copy, a sweep's look and a merge see it, and SIGTERM, SIGHUP and submitit's requeue signal
within `stop_on_sigterm`. tests/test_job.py runs them within whole jobs."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import signal
import sys
import threading

import pytest

import nasheur.jobguard as jobguard
from nasheur.jobguard import (
    FolderLocked,
    Terminated,
    describe_holder,
    describe_progress,
    exclusive,
    folder_holder,
    hold_folder,
    lock_holder,
    preemption_signal,
    recorded_details,
    stop_on_sigterm,
    try_hold,
    usable_cpus,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")


@pytest.fixture
def other_open(tmp_path):
    """Another open of a file (as another process's): flock sees it as another holder."""
    opened: list[int] = []

    def open_(path, flags=os.O_RDWR | os.O_CREAT):
        fd = os.open(path, flags, 0o644)
        opened.append(fd)
        return fd

    yield open_
    for fd in opened:
        os.close(fd)


@pytest.fixture
def handlers_back():
    """SIGTERM, SIGHUP and SIGUSR1/2 as they were before the test, whatever it set."""
    sigs = [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]
    before = {s: signal.getsignal(s) for s in sigs}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


def test_a_holder_is_described_as_the_docstring_shows():
    holder = {
        "host": "node7",
        "pid": 123,
        "slurm_job_id": "457",  # an array task's own job id: its array's id and index say it
        "slurm_array_job_id": "456",
        "slurm_array_task_id": "2",
        "started": "2026-01-02T03:04:05+00:00",
    }
    said = "pid 123 on node7, SLURM job 456_2, since 2026-01-02T03:04:05+00:00"
    assert describe_holder(holder) == said
    plain = {"pid": 5, "slurm_job_id": "99"}  # a job outside an array
    assert describe_holder(plain) == "pid 5, SLURM job 99"
    assert describe_holder({}) == "no details recorded yet"


def test_a_job_waits_out_a_sweeps_look_before_it_refuses(tmp_path, other_open, monkeypatch):
    # a sweep asking whether the job runs holds the lock shared for an instant: a job that
    # starts meanwhile tries again (RETRIES times) instead of refusing its own folder
    look = other_open(tmp_path / "job.lock")
    fcntl.flock(look, fcntl.LOCK_SH)
    waits: list[float] = []

    def the_look_ends(seconds):
        waits.append(seconds)
        fcntl.flock(look, fcntl.LOCK_UN)

    monkeypatch.setattr(jobguard.time, "sleep", the_look_ends)
    with hold_folder(tmp_path) as details:
        assert details is not None and details["pid"] == os.getpid()
        assert lock_holder(tmp_path / "job.lock") == details
    assert waits  # it did wait


def test_a_folder_held_by_a_running_job_is_refused_with_its_details(tmp_path, monkeypatch):
    monkeypatch.setattr(jobguard.time, "sleep", lambda s: None)
    with hold_folder(tmp_path) as details:
        with pytest.raises(FolderLocked) as refused, hold_folder(tmp_path):
            pytest.fail("a second holder")
        assert refused.value.holder == details
        assert f"pid {os.getpid()}" in str(refused.value)
    assert folder_holder(tmp_path) is None  # let go when the block ended
    with hold_folder(tmp_path):  # and free to take again
        assert folder_holder(tmp_path) is not None


def test_the_lock_file_says_this_holder_whole_over_a_longer_last_one(tmp_path):
    # the file stays between jobs: a shorter record written over a longer one must not keep
    # the longer one's tail (which makes it unreadable, and the holder unnamed)
    lock = tmp_path / "job.lock"
    longer = json.dumps({"host": "x" * 500, "pid": 1, "started": "long ago"}) + "\n"
    lock.write_text(longer)
    with hold_folder(tmp_path) as details:
        assert json.loads(lock.read_text()) == details
        assert folder_holder(tmp_path) == details
    lock.write_text(longer)
    fd, holder = try_hold(lock, {"sweep": "s"})
    try:
        assert fd is not None and holder is None
        recorded = json.loads(lock.read_text())
        assert recorded["sweep"] == "s" and recorded["pid"] == os.getpid()
        assert lock_holder(lock) == recorded
    finally:
        os.close(fd)
    assert lock_holder(lock) is None  # closing it let go


def test_a_job_notes_its_progress_where_others_read_who_holds_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(jobguard.time, "sleep", lambda s: None)
    with hold_folder(tmp_path) as holding:
        holding.note(epoch=412, epochs=1000, eta_s=18720.0)
        seen = folder_holder(tmp_path)
        assert seen == holding and seen["pid"] == os.getpid()
        said = describe_holder(seen)
        assert said.startswith(f"pid {os.getpid()}")
        stamp = seen["progress"]["at"]
        assert f"; epoch 412/1000 done at {stamp}, about 5:12:00 of training left" in said
        with pytest.raises(FolderLocked) as refused, hold_folder(tmp_path):
            pytest.fail("a second holder")
        assert "epoch 412/1000 done" in str(refused.value)  # a second copy is told too
        holding.note(evaluated=150, of=200, eta_s=4.6)  # replaces the epoch
        assert describe_progress(folder_holder(tmp_path)["progress"]) == (
            f"trained; evaluated 150/200 architectures at {holding['progress']['at']}, about "
            "0:00:05 of evaluation left"
        )
        holding.record(training="0123456789ab")  # beside the progress, for others to read
        seen = folder_holder(tmp_path)
        assert seen["training"] == "0123456789ab" and seen["progress"]["evaluated"] == 150
    # the process gone, its last word stays in the file
    assert recorded_details(tmp_path / "job.lock")["progress"]["evaluated"] == 150


@pytest.mark.parametrize(
    ("progress", "said"),
    [
        (
            {"epoch": 3, "epochs": 10, "eta_s": 90.4},
            "epoch 3/10 done, about 0:01:30 of training left",
        ),
        ({"epoch": 10, "epochs": 10, "eta_s": 0.0}, "epoch 10/10 done"),  # nothing left
        ({"epoch": 3, "epochs": 10}, "epoch 3/10 done"),  # a resumed job's first word
        ({"epoch": "x", "epochs": 10}, ""),  # another version's file, or a damaged one
        ({"evaluated": 5}, ""),
        ({"evaluated": 200, "of": 200, "eta_s": 0.0}, "trained; evaluated 200/200 architectures"),
        ({"evaluated": 50, "of": 200}, "trained; evaluated 50/200 architectures"),  # older job
        (None, ""),
        ([1, 2], ""),
    ],
)
def test_progress_is_said_plainly_or_not_at_all(progress, said):
    assert describe_progress(progress) == said


def test_a_stopped_jobs_progress_is_said_without_time_left():
    assert (
        describe_progress({"epoch": 3, "epochs": 10, "eta_s": 90}, left=False) == "epoch 3/10 done"
    )


def test_a_look_between_a_rewrite_and_its_cut_reads_the_new_details(tmp_path):
    # write_details writes over the old details, then cuts the file to length: a look in
    # between finds the new details and the old ones' tail, never an empty file
    lock = tmp_path / "job.lock"
    lock.write_text(json.dumps({"pid": 2, "host": "a-much-longer-host-name"}) + "\n")
    fd = os.open(lock, os.O_RDWR)
    try:
        os.pwrite(fd, (json.dumps({"pid": 1}) + "\n").encode(), 0)  # not cut yet
        assert recorded_details(lock) == {"pid": 1}
        jobguard.write_details(fd, {"pid": 3})
        assert lock.read_text() == '{"pid": 3}\n'  # cut to its own length
        jobguard.write_details(fd, {})
        assert lock.read_text() == "" and recorded_details(lock) == {}
    finally:
        os.close(fd)


def test_a_sweeps_look_is_not_a_holder(tmp_path, other_open):
    # two looks at once (two sweeps, or a sweep and `results show`) do not see each other as
    # a running job: a look takes the lock shared
    lock = tmp_path / "job.lock"
    lock.write_text(json.dumps({"pid": 1}) + "\n")  # the last job's details, long ended
    look = other_open(lock, os.O_RDONLY)
    fcntl.flock(look, fcntl.LOCK_SH)
    assert lock_holder(lock) is None
    assert folder_holder(tmp_path) is None
    assert folder_holder(tmp_path / "missing") is None  # no lock file: no job


def test_an_exclusive_block_keeps_others_out_and_waits_for_its_turn(tmp_path, other_open):
    path = tmp_path / "sweep.json.lock"
    other = other_open(path)
    # not even a look gets in while the block runs
    with exclusive(path), pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # let go when it ended
    # a merge that finds another under way waits for it, rather than failing
    entered, done, errors = threading.Event(), threading.Event(), []

    def merge():
        entered.set()
        try:
            with exclusive(path):
                done.set()
        except BaseException as err:  # said by the test
            errors.append(err)

    thread = threading.Thread(target=merge, daemon=True)
    thread.start()
    assert entered.wait(60)
    assert not done.wait(0.5)  # it waits while the other holds it
    fcntl.flock(other, fcntl.LOCK_UN)
    thread.join(60)
    assert errors == [] and done.is_set()


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGTERM, 143, "SIGTERM (stopped from outside: scancel, kill"),
        (signal.SIGHUP, 129, "SIGHUP (the terminal or session ended"),
    ],
)
def test_a_stop_is_128_plus_its_signal_and_pickles_as_it_was_raised(signum, code, said):
    # a packed job's result travels pickled to its task: its stop must arrive as it was
    stop = Terminated(signum)
    assert stop.code == code and str(stop).startswith(said)
    back = pickle.loads(pickle.dumps(stop))
    assert type(back) is Terminated and back.signum == signum and back.code == code
    assert str(back) == str(stop)


def test_a_refusal_pickles_with_its_holder():
    holder = {"pid": 7, "host": "node1", "started": "2026-01-02T03:04:05+00:00"}
    refused = FolderLocked("/runs/x", holder)
    back = pickle.loads(pickle.dumps(refused))
    assert type(back) is FolderLocked and back.holder == holder and back.folder == "/runs/x"
    assert str(back) == str(refused) and "pid 7 on node1" in str(back)


def test_submitit_requeues_on_usr2_unless_told_another_signal(monkeypatch):
    # the launch README: the sbatch script asks SLURM for USR2 before the time limit
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    assert preemption_signal() == signal.SIGUSR2
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert preemption_signal() == signal.SIGUSR1
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "NOSUCH")
    assert preemption_signal() is None


def test_the_usable_cpus_are_the_affinitys_not_the_machines(monkeypatch):
    # a SLURM task of 3 CPUs on a machine of many
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cpus() == 3


def test_a_second_sigterm_while_the_job_ends_is_only_logged(handlers_back, caplog):
    stopped = 0
    with caplog.at_level(logging.WARNING, logger="nasheur"), stop_on_sigterm("the test"):
        try:
            signal.raise_signal(signal.SIGTERM)
        except Terminated as stop:
            stopped += 1
            assert stop.code == 128 + signal.SIGTERM
        signal.raise_signal(signal.SIGTERM)  # while it ends (writes its record): no raise
    assert stopped == 1
    assert "SIGTERM again: already stopping" in caplog.text


def test_a_hang_up_stops_the_job_unless_it_is_ignored_which_it_stays(handlers_back):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    with stop_on_sigterm("the test"):
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        signal.raise_signal(signal.SIGHUP)  # nothing happens
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a terminal's: the process would die
    with pytest.raises(Terminated) as stop, stop_on_sigterm("the test"):
        signal.raise_signal(signal.SIGHUP)
    assert stop.value.code == 128 + signal.SIGHUP
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # as it was


def test_without_submitit_the_requeue_signal_keeps_its_default(handlers_back, monkeypatch):
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    with stop_on_sigterm("the test"):
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL


def _submitit_like(requeue):
    """SIGTERM ignored (logged) and `requeue` on USR2, as submitit sets them in a job."""
    seen: list[str] = []

    def bypass(signum, frame):
        seen.append("SIGTERM bypassed")

    signal.signal(signal.SIGTERM, bypass)
    signal.signal(signal.SIGUSR2, requeue)
    return seen, bypass


def test_sigterm_after_submitits_requeue_stays_with_submitit(handlers_back, monkeypatch):
    # SLURM's SIGTERM after `scontrol requeue` may come late, while the requeued job ends:
    # it is left to submitit's handler, so the job ends as submitit ended it
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)

    def requeue(signum, frame):
        sys.exit(-1)

    seen, bypass = _submitit_like(requeue)
    with stop_on_sigterm("the test"):
        with pytest.raises(SystemExit) as ended:
            signal.raise_signal(signal.SIGUSR2)
        assert type(ended.value) is SystemExit and ended.value.code == -1
        signal.raise_signal(signal.SIGTERM)  # no Terminated
    assert seen == ["SIGTERM bypassed"]
    assert signal.getsignal(signal.SIGTERM) is bypass
    assert signal.getsignal(signal.SIGUSR2) is requeue


def test_a_requeue_that_failed_leaves_sigterm_to_stop_the_job(handlers_back, monkeypatch):
    # submitit's last time-out: its handler raises instead of requeueing, and a scancel
    # afterwards must still end the job as interrupted
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)

    def requeue(signum, frame):
        raise RuntimeError("no more requeues")

    seen, _ = _submitit_like(requeue)
    with pytest.raises(Terminated), stop_on_sigterm("the test"):
        with pytest.raises(RuntimeError):
            signal.raise_signal(signal.SIGUSR2)
        signal.raise_signal(signal.SIGTERM)
    assert seen == []


def test_the_folder_is_let_go_when_the_job_ends_even_with_a_forked_child_alive(tmp_path):
    # a process forked while the job held its folder (a data loader's worker) shares the
    # lock file's open description: the job's end must unlock it, not just close its own fd
    read_end, write_end = os.pipe()
    with hold_folder(tmp_path):
        child = os.fork()
        if child == 0:  # the child: waits until told, then goes without cleaning up
            os.close(write_end)
            os.read(read_end, 1)
            os._exit(0)
    try:
        assert folder_holder(tmp_path) is None
        with hold_folder(tmp_path):  # a new copy of the job takes it at once
            assert folder_holder(tmp_path)["pid"] == os.getpid()
    finally:
        os.close(read_end)
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(child, 0)


def test_a_stop_during_a_log_write_goes_to_stderr_not_into_that_write(handlers_back, capfd):
    # the stream of a record being written cannot take another write from the handler (a
    # buffered stream raises "reentrant call"): the line goes to stderr, past that stream
    written: list[str] = []

    class Stream:
        def write(self, text):
            written.append(text)

        def flush(self):
            """Nothing buffered."""

    handler = logging.StreamHandler(Stream())
    logger = logging.getLogger("nasheur")
    logger.addHandler(handler)
    try:
        with pytest.raises(Terminated), stop_on_sigterm("the test"), handler.lock:
            signal.raise_signal(signal.SIGTERM)
    finally:
        logger.removeHandler(handler)
    assert "SIGTERM: stopping the test\n" in capfd.readouterr().err
    assert not any("SIGTERM" in text for text in written)


def test_a_lock_that_fails_otherwise_than_unsupported_is_an_error(tmp_path, monkeypatch):
    # only a file system without locks runs the job unlocked; an I/O error is not that
    import errno

    def broken(fd, operation):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(jobguard.fcntl, "flock", broken)
    with pytest.raises(OSError) as failed, hold_folder(tmp_path):
        pytest.fail("ran unlocked")
    assert failed.value.errno == errno.EIO
