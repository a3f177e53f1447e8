"""The local process job runner: training happens in another process, with progress and cancel."""

import pytest
from testdata import TINY_MODEL, TINY_TRAIN

from core import Cancelled, ContinuoError, LocalProcessRunner, ModelConfig, TrainConfig, TrainRequest, load


def request(out, **train):
    return TrainRequest(
        out=out, source="verse", model=ModelConfig(**TINY_MODEL), train=TrainConfig(**{**TINY_TRAIN, **train})
    )


def test_job_trains_in_another_process_and_reports_progress(tmp_path):
    reports = []
    job = LocalProcessRunner().submit(request(tmp_path / "m"), reports.append)
    result = job.result(timeout=300)
    assert job.done() and result.card.corpus == "verse"
    assert reports[0].phase == "start" and reports[-1].phase == "done"
    assert load(result.path).generate("The sea", max_new_tokens=3)


def test_cancelled_job_saves_nothing(tmp_path):
    job = None

    def cancel_on_first_batch(p):
        if p.phase == "batch":
            job.cancel()

    job = LocalProcessRunner().submit(request(tmp_path / "m", epochs=100), cancel_on_first_batch)
    with pytest.raises(Cancelled):
        job.result(timeout=300)
    assert not (tmp_path / "m").exists()


def test_job_errors_come_back_as_one_line(tmp_path):
    job = LocalProcessRunner().submit(TrainRequest(out=tmp_path / "m", text="too short to learn from"))
    with pytest.raises(ContinuoError, match="at least 2,000 are needed"):
        job.result(timeout=300)


def test_cancel_during_start_up_ends_the_job_promptly(tmp_path):
    import time

    job = LocalProcessRunner().submit(request(tmp_path / "m", epochs=100))
    start = time.monotonic()
    job.cancel()  # before the child has even imported TensorFlow
    with pytest.raises(Cancelled):
        job.result(timeout=60)
    assert time.monotonic() - start < 30 and not (tmp_path / "m").exists()


def test_a_child_ends_when_its_parent_is_killed_outright(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, time\n"
        "from core import exit_with_parent\n"
        "def _sleep_under(parent):\n"
        "    exit_with_parent(parent)\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    child = mp.get_context('spawn').Process(target=_sleep_under, args=(os.getpid(),))\n"
        "    child.start()\n"
        "    print(child.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{child}/stat").read().split()[2] == "Z":
            return  # ended, waiting to be reaped by init
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its killed parent")
