"""What guards a running job (src/nasheur/jobguard.py) on its own: the folder lock as a second
copy, a sweep's look and a merge see it, and SIGTERM, SIGHUP and submitit's requeue signal
within `stop_on_sigterm`. tests/test_job.py runs them within whole jobs."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta

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
    holder_details,
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
        ({"epoch": None, "epochs": 10}, ""),  # damaged: not a number at all
        ({"epoch": 3, "epochs": 10, "eta_s": "90"}, "epoch 3/10 done"),  # a time left unread
        # JSON reads "Infinity" as a float that no time span holds: nothing said, no error
        ({"epoch": 3, "epochs": 10, "eta_s": float("inf")}, ""),
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


def test_sigterm_after_a_requeue_ends_the_process_where_its_handler_was_the_default():
    # the requeue handler has run, and SIGTERM's previous handler is the default: SIGTERM
    # ends the process, as it would have without stop_on_sigterm (not ignored, not Terminated)
    code = """if True:
        import signal, sys
        from nasheur.jobguard import stop_on_sigterm
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, lambda signum, frame: sys.exit(-1))
        with stop_on_sigterm("the test"):
            try:
                signal.raise_signal(signal.SIGUSR2)
            except SystemExit:
                pass
            signal.raise_signal(signal.SIGTERM)
            print("still running")
    """
    env = {k: v for k, v in os.environ.items() if k != "SUBMITIT_PREEMPT_SIGNAL"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stdout, proc.stderr)
    assert "still running" not in proc.stdout


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


# nasheur's own logger, and the root logger: the usual set-up, where the program's handler
# sits on the root and nasheur's records reach it by propagation (pytest's handlers sit there
# too, not writing)
@pytest.mark.parametrize("logger_name", ["nasheur", ""], ids=["nasheur", "root"])
def test_a_stop_during_a_log_write_goes_to_stderr_not_into_that_write(
    handlers_back, capfd, logger_name
):
    # the stream of a record being written cannot take another write from the handler (a
    # buffered stream raises "reentrant call"): the line goes to stderr, past that stream
    written: list[str] = []

    class Stream:
        def write(self, text):
            written.append(text)

        def flush(self):
            """Nothing buffered."""

    handler = logging.StreamHandler(Stream())
    logger = logging.getLogger(logger_name)
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


def test_the_holder_record_names_this_process_its_slurm_job_and_a_utc_start(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "457")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "456")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    details = holder_details()
    assert details["host"] == socket.gethostname() and details["pid"] == os.getpid()
    assert details["slurm_job_id"] == "457"
    assert (details["slurm_array_job_id"], details["slurm_array_task_id"]) == ("456", "2")
    assert ", SLURM job 456_2, since " in describe_holder(details)
    # a start another node can compare with its own clock: in UTC, said so
    assert datetime.fromisoformat(details["started"]).utcoffset() == timedelta(0)
    # a job outside an array; an empty variable says nothing
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "")
    plain = holder_details()
    assert "slurm_array_job_id" not in plain and "slurm_array_task_id" not in plain
    assert ", SLURM job 457, since " in describe_holder(plain)


def test_progress_is_stamped_in_utc(tmp_path):
    with hold_folder(tmp_path) as holding:
        holding.note(epoch=1, epochs=2)
        stamp = folder_holder(tmp_path)["progress"]["at"]
    assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)


def test_a_refusal_without_details_says_so():
    # a holder that wrote nothing yet (it just took the lock)
    refused = FolderLocked("/runs/x")
    assert refused.holder == {} and "(no details recorded yet)" in str(refused)


@pytest.mark.parametrize(
    "content",
    [
        b"",  # a job that took the lock and wrote nothing yet
        b"not json\n",  # damaged
        b'{"pid": "\xff\xfe"}',  # bytes that are not UTF-8
        b"[1, 2]\n",  # JSON, but not a record
    ],
)
def test_an_unreadable_lock_file_records_no_details(tmp_path, other_open, content):
    # `results show` and a refused second copy read these: a bad file must not stop them
    lock = tmp_path / "job.lock"
    lock.write_bytes(content)
    assert recorded_details(lock) == {}
    fcntl.flock(other_open(lock), fcntl.LOCK_EX)  # held by a running job
    assert lock_holder(lock) == {}
    assert recorded_details(tmp_path / "missing.lock") == {}


def test_a_long_holder_record_is_read_whole(tmp_path):
    # a claim's record names its sweep folder, and a path can be thousands of bytes long
    lock = tmp_path / "claim.lock"
    details = {"pid": 1, "sweep": "/" + "d" * 3000}
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        jobguard.write_details(fd, details)
    finally:
        os.close(fd)
    assert recorded_details(lock) == details


def test_a_failed_progress_note_does_not_stop_the_job(tmp_path):
    # progress is only for people to read: a write that fails (a full disk) is no error
    lock = tmp_path / "job.lock"
    lock.write_text("")
    fd = os.open(lock, os.O_RDONLY)  # every write to it fails
    try:
        holding = jobguard.Holding(fd, {"pid": 1})
        holding.note(epoch=1, epochs=2)
        assert holding["progress"]["epoch"] == 1  # kept in memory all the same
    finally:
        os.close(fd)


def test_a_job_that_cannot_write_its_details_still_holds_its_folder(tmp_path, monkeypatch):
    def full_disk(fd, details):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jobguard, "write_details", full_disk)
    monkeypatch.setattr(jobguard.time, "sleep", lambda s: None)
    with hold_folder(tmp_path) as holding:
        assert holding is not None and holding["pid"] == os.getpid()
        assert folder_holder(tmp_path) == {}  # held, with no details
        with pytest.raises(FolderLocked), hold_folder(tmp_path):
            pytest.fail("a second holder")


def test_the_lock_file_is_readable_by_others(tmp_path):
    # a sweep or `results show` of another user asks who holds the folder (a read-only open)
    old = os.umask(0o022)
    try:
        with hold_folder(tmp_path):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "job.lock").stat().st_mode & 0o777 == 0o644


def test_lock_files_are_writable_by_the_group_where_the_umask_says_so(tmp_path):
    # a runs folder shared by a group: another member resumes the job, relaunches the sweep
    old = os.umask(0o002)
    try:
        with hold_folder(tmp_path), exclusive(tmp_path / "sweep.lock"):
            pass
        fd, _ = try_hold(tmp_path / "claim.lock", {})
        os.close(fd)
    finally:
        os.umask(old)
    for name in ("job.lock", "sweep.lock", "claim.lock"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o664, name


def test_a_refusal_is_the_callers_kind_on_the_callers_lock_file(tmp_path, monkeypatch):
    class BuildLocked(FolderLocked):
        """A ground-truth build's own refusal."""

    monkeypatch.setattr(jobguard.time, "sleep", lambda s: None)
    with hold_folder(tmp_path, lock="build.lock"):
        assert lock_holder(tmp_path / "build.lock")["pid"] == os.getpid()
        assert folder_holder(tmp_path) is None  # not the job lock
        with (
            pytest.raises(BuildLocked),
            hold_folder(tmp_path, refused=BuildLocked, lock="build.lock"),
        ):
            pytest.fail("a second holder")


def test_a_job_tries_a_few_times_within_a_second_then_refuses(tmp_path, other_open, monkeypatch):
    # the docstring's promise: refused "at once (after a few tries within a second)"
    fcntl.flock(other_open(tmp_path / "job.lock"), fcntl.LOCK_EX)  # a running job
    tries, waits = [], []
    real_try = jobguard._try_lock

    def counted(fd, operation):
        tries.append(operation)
        return real_try(fd, operation)

    monkeypatch.setattr(jobguard, "_try_lock", counted)
    monkeypatch.setattr(jobguard.time, "sleep", waits.append)
    with pytest.raises(FolderLocked), hold_folder(tmp_path):
        pytest.fail("a second holder")
    assert len(tries) == jobguard.RETRIES > 1
    assert len(waits) == len(tries) - 1  # no wait after the last try
    assert sum(waits) < 1.0


def test_a_claim_held_elsewhere_names_its_holder_and_keeps_no_file_open(tmp_path, other_open):
    lock = tmp_path / "claim.lock"
    lock.write_text(json.dumps({"pid": 99, "sweep": "/sweeps/a"}) + "\n")
    fcntl.flock(other_open(lock), fcntl.LOCK_EX)  # another launch holds it
    opened = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    fd, holder = try_hold(lock, {"sweep": "/sweeps/b"})
    assert fd is None and holder == {"pid": 99, "sweep": "/sweeps/a"}
    if opened is not None:  # a launch asks for hundreds of claims
        assert len(os.listdir("/proc/self/fd")) == opened
    assert try_hold(tmp_path / "missing" / "claim.lock", {}) == (None, None)  # no folder


def test_taking_a_claim_hands_back_the_last_holders_details(tmp_path):
    # a claim let go is put back as it was found (reuse.py's drop)
    lock = tmp_path / "claim.lock"
    last = {"pid": 99, "sweep": "/sweeps/a", "submitted": "123"}
    lock.write_text(json.dumps(last) + "\n")
    before: dict = {}
    fd, _ = try_hold(lock, {"sweep": "/sweeps/b"}, before=before)
    assert fd is not None
    try:
        assert before == last
    finally:
        os.close(fd)


@pytest.mark.parametrize("err", [errno.ENOLCK, errno.EOPNOTSUPP], ids=["ENOLCK", "EOPNOTSUPP"])
def test_a_file_system_without_locks_runs_unlocked_with_a_warning(
    tmp_path, monkeypatch, caplog, err
):
    # NFS without its lock daemon says ENOLCK: the job runs (warned); a look sees no holder
    def refuse(fd, operation):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(jobguard.fcntl, "flock", refuse)
    with caplog.at_level(logging.WARNING, logger="nasheur"):
        with hold_folder(tmp_path) as holding:
            assert holding is None
        with exclusive(tmp_path / "sweep.json.lock"):
            pass
    assert caplog.text.count("the file system refuses locks") == 2
    assert lock_holder(tmp_path / "job.lock") is None
    assert try_hold(tmp_path / "claim.lock", {}) == (None, None)


def test_outside_the_main_thread_signals_are_left_alone(handlers_back):
    # Python sets signal handlers only from the main thread: elsewhere the job runs as is
    before = signal.getsignal(signal.SIGTERM)
    seen, errors = [], []

    def job():
        try:
            with stop_on_sigterm("the test"):
                seen.append(signal.getsignal(signal.SIGTERM))
        except BaseException as err:  # said by the test
            errors.append(err)

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    thread.join(60)
    assert errors == [] and seen == [before]


def test_a_hang_up_handler_of_the_programs_own_is_left_in_place(handlers_back):
    # only a default SIGHUP (which would kill the job without a record) becomes a stop
    def own(signum, frame):
        """The program's."""

    signal.signal(signal.SIGHUP, own)
    with stop_on_sigterm("the test"):
        assert signal.getsignal(signal.SIGHUP) is own
    assert signal.getsignal(signal.SIGHUP) is own


def test_sigterm_stops_the_job_even_where_submitit_requeues_on_sigterm(handlers_back, monkeypatch):
    # submitit sets its SIGTERM handler (which ignores it) after its requeue handler: with
    # SUBMITIT_PREEMPT_SIGNAL=TERM, SIGTERM must still end the job as interrupted, not be
    # handed to a handler that ignores it until SLURM's SIGKILL
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "TERM")
    seen, bypass = _submitit_like(lambda signum, frame: None)
    with pytest.raises(Terminated), stop_on_sigterm("the test"):
        signal.raise_signal(signal.SIGTERM)
    assert seen == []
    assert signal.getsignal(signal.SIGTERM) is bypass


def test_without_an_affinity_the_usable_cpus_are_the_machines(monkeypatch):
    # macOS has no sched_getaffinity; os.cpu_count() may not know (None): at least one
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cpus() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus() == 1


def test_a_claim_waits_out_a_sweeps_look_too(tmp_path, other_open, monkeypatch):
    # a launch claiming a job whose claim another sweep is looking at must not see a holder
    lock = tmp_path / "claim.lock"
    look = other_open(lock)
    fcntl.flock(look, fcntl.LOCK_SH)
    monkeypatch.setattr(jobguard.time, "sleep", lambda s: fcntl.flock(look, fcntl.LOCK_UN))
    fd, holder = try_hold(lock, {"sweep": "/sweeps/b"})
    assert holder is None and fd is not None
    os.close(fd)


def test_the_requeue_signal_submitit_was_told_is_the_one_watched(handlers_back, monkeypatch):
    # SUBMITIT_PREEMPT_SIGNAL=USR1: a requeue on USR1 leaves the SIGTERM after it to submitit
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)

    def requeue(signum, frame):
        sys.exit(-1)

    seen, _ = _submitit_like(lambda signum, frame: None)
    signal.signal(signal.SIGUSR1, requeue)
    with stop_on_sigterm("the test"):
        with pytest.raises(SystemExit) as ended:
            signal.raise_signal(signal.SIGUSR1)
        assert type(ended.value) is SystemExit and ended.value.code == -1
        signal.raise_signal(signal.SIGTERM)  # no Terminated
    assert seen == ["SIGTERM bypassed"]
    assert signal.getsignal(signal.SIGUSR1) is requeue
