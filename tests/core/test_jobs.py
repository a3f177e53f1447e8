"""The local process job runner: training happens in another process, with progress and cancel."""
import pytest

from testdata import TINY_MODEL, TINY_TRAIN
from core import Cancelled, ContinuoError, LocalProcessRunner, ModelConfig, TrainConfig, TrainRequest, load


def request(out, **train):
    return TrainRequest(out=out, source="verse", model=ModelConfig(**TINY_MODEL),
                        train=TrainConfig(**{**TINY_TRAIN, **train}))


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
