"""The Ray job runner against a real local Ray (2 CPUs, no dashboard): progress, cancel, errors, jobs side by side."""

import threading

import pytest
from testdata import TINY_MODEL, TINY_TRAIN

from core import Cancelled, ContinuoError, ModelConfig, RayConfig, RayRunner, TrainConfig, TrainRequest, load, read_card

ray = pytest.importorskip("ray", reason='training on Ray needs ray: pip install -e ".[test]"')

TIMEOUT = 240  # seconds; a worker imports TensorFlow first, on 2 shared cores


@pytest.fixture(scope="module")
def runner():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        namespace="continuo-tests",
    )
    try:
        yield RayRunner(RayConfig(cpus=1, memory_mb=600))  # two jobs fit side by side on the 2 CPUs
    finally:
        ray.shutdown()


def request(out, **train):
    return TrainRequest(
        out=out, source="verse", model=ModelConfig(**TINY_MODEL), train=TrainConfig(**{**TINY_TRAIN, **train})
    )


def test_job_trains_in_a_ray_worker_and_streams_its_progress(runner, tmp_path):
    reports = []
    job = runner.submit(request(tmp_path / "m"), reports.append)
    result = job.result(timeout=TIMEOUT)
    assert job.done() and job.id.startswith("ray-")
    assert [r.phase for r in reports][0] == "start" and reports[-1].phase == "done"
    assert any(r.phase == "epoch" and r.val_perplexity for r in reports)
    assert result.path == tmp_path / "m" and result.card.corpus == "verse"  # the bundle came back to `out`
    assert load(result.path).generate("The sea", max_new_tokens=3)
    assert not list(tmp_path.glob(".m.*"))  # no temporary folder left beside it


def test_the_instant_model_comes_back_to_its_own_path_as_soon_as_it_is_counted(runner, tmp_path):
    reports = []
    req = request(tmp_path / "m")
    req.instant_out = tmp_path / "instant"
    result = runner.submit(req, reports.append).result(timeout=TIMEOUT)
    instant = [r for r in reports if r.phase == "instant"]
    assert instant and instant[0].path == str(tmp_path / "instant")  # the caller's path, not the worker's
    assert read_card(tmp_path / "instant").stopped == "n-gram model only"
    assert result.path == tmp_path / "m" and read_card(result.path).epochs == 1


def test_cancel_stops_the_job_and_keeps_the_old_model(runner, tmp_path):
    first = runner.submit(request(tmp_path / "m")).result(timeout=TIMEOUT)
    old = read_card(first.path)
    job, batches = None, threading.Event()

    def cancel_on_first_batch(p):
        if p.phase == "batch":
            batches.set()
            job.cancel()

    job = runner.submit(request(tmp_path / "m", epochs=100, seed=7), cancel_on_first_batch)
    with pytest.raises(Cancelled, match="previous model is unchanged"):
        job.result(timeout=TIMEOUT)
    assert batches.is_set()  # it was training when cancelled, not refused before starting
    assert read_card(tmp_path / "m") == old and load(tmp_path / "m").generate("The sea", max_new_tokens=3)


def test_a_failing_job_reports_its_error(runner, tmp_path):
    job = runner.submit(TrainRequest(out=tmp_path / "m", text="too short to learn from"))
    with pytest.raises(ContinuoError, match="at least 2,000 are needed") as error:
        job.result(timeout=TIMEOUT)
    assert "\n" not in str(error.value) and not (tmp_path / "m").exists()

    missing = runner.submit(TrainRequest(out=tmp_path / "m", source=tmp_path / "nowhere.txt"))
    with pytest.raises(ContinuoError, match="nowhere.txt"):
        missing.result(timeout=10)


def test_two_servers_train_side_by_side(runner, tmp_path):
    """Each job asks for one of the two CPUs: both are training at the same moment."""
    training = {"alpha": threading.Event(), "beta": threading.Event()}

    def watcher(name):
        return lambda p: training[name].set() if p.phase == "batch" else None

    jobs = {
        name: runner.submit(request(tmp_path / name / "model", epochs=100, seed=i), watcher(name))
        for i, name in enumerate(training)
    }
    for name, event in training.items():
        assert event.wait(TIMEOUT), f"{name}'s job never started training"
    assert not any(job.done() for job in jobs.values())  # both still running: neither waited for the other
    for job in jobs.values():
        job.cancel()
    for job in jobs.values():
        with pytest.raises(Cancelled):
            job.result(timeout=TIMEOUT)
    assert not (tmp_path / "alpha" / "model").exists() and not (tmp_path / "beta" / "model").exists()
