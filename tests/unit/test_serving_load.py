"""The endpoint's load path without a server: coalescing /predict_by_id requests, answering a batch
of them from one read, and what /readyz reports."""

import asyncio
import threading

import pytest

from sagestack.models import Prediction
from sagestack.serving.coalesce import Coalescer
from sagestack.serving.readiness import Readiness, WorkerGroup
from sagestack.serving.requests import predict_stored_batch


def test_concurrent_submissions_share_calls_one_at_a_time_and_keep_their_own_results():
    calls, running = [], []

    async def batch(items):
        running.append(1)
        assert len(running) == 1, "two calls ran at once"
        calls.append(list(items))
        await asyncio.sleep(0.02)  # the requests that come meanwhile wait for the next call
        running.pop()
        return [item * 10 for item in items]

    async def main():
        coalescer = Coalescer(batch, max_weight=4)
        first = await asyncio.gather(*(coalescer.submit(i) for i in range(9)))
        # Three submitted while a call runs: they share the next one.
        lone = asyncio.ensure_future(coalescer.submit(100))
        await asyncio.sleep(0.005)
        late = await asyncio.gather(*(coalescer.submit(i) for i in (101, 102, 103)))
        return first, await lone, late, coalescer.calls

    first, lone, late, count = asyncio.run(main())
    assert first == [i * 10 for i in range(9)] and lone == 1000 and late == [1010, 1020, 1030]
    # All nine were queued in one turn of the loop: they go 4 at a time, in order.
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8], [100], [101, 102, 103]] and count == 5


def test_a_call_takes_items_up_to_the_weight_limit_and_an_item_over_it_alone():
    calls = []

    async def batch(items):
        calls.append([len(ids) for ids in items])
        await asyncio.sleep(0)
        return items

    async def main():
        coalescer = Coalescer(batch, max_weight=64, weight=len)
        requests = [[1] * 30, [2] * 30, [3] * 10, [4] * 100, [5]]
        return await asyncio.gather(*(coalescer.submit(ids) for ids in requests)), requests

    answers, requests = asyncio.run(main())
    assert answers == requests
    assert calls == [[30, 30], [10], [100], [1]]


def test_a_cancelled_drain_cancels_its_waiters_instead_of_leaving_them_hanging():
    async def batch(items):
        await asyncio.sleep(10)

    async def main():
        coalescer = Coalescer(batch)
        waiters = [asyncio.ensure_future(coalescer.submit(i)) for i in range(3)]
        await asyncio.sleep(0.01)
        coalescer._drain_task.cancel()  # what a shutdown does to every task
        done = await asyncio.gather(*waiters, return_exceptions=True)
        return [type(result).__name__ for result in done]

    assert asyncio.run(main()) == ["CancelledError"] * 3


def test_a_failing_call_fails_its_own_items_only():
    async def batch(items):
        await asyncio.sleep(0.02)
        if "bad" in items:
            raise ConnectionError("store down")
        return [item.upper() for item in items]

    async def main():
        coalescer = Coalescer(batch, max_weight=2)
        first = asyncio.ensure_future(coalescer.submit("a"))
        await asyncio.sleep(0.005)  # "a" runs alone; the next two share a call, the last runs after
        rest = await asyncio.gather(coalescer.submit("bad"), coalescer.submit("b"), coalescer.submit("c"),
                                    return_exceptions=True)
        return await first, rest

    first, (bad, b, c) = asyncio.run(main())
    assert first == "A"
    assert isinstance(bad, ConnectionError) and isinstance(b, ConnectionError)
    assert c == "C"


def test_a_batch_function_with_the_wrong_number_of_results_is_an_error_not_a_hang():
    async def none(items):
        return []

    async def main():
        return await Coalescer(none).submit(1)

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        asyncio.run(main())


def test_a_cancelled_submitter_is_skipped_and_the_rest_are_answered():
    async def batch(items):
        await asyncio.sleep(0.05)
        return items

    async def main():
        coalescer = Coalescer(batch)
        first = asyncio.ensure_future(coalescer.submit(1))
        await asyncio.sleep(0.01)
        gone = asyncio.ensure_future(coalescer.submit(2))
        kept = asyncio.ensure_future(coalescer.submit(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        return await first, await kept, gone.cancelled()

    assert asyncio.run(main()) == (1, 3, True)


class Reader:
    """An online-store reader over an in-code table (what OnlineReader.get returns)."""

    def __init__(self, table):
        self.table, self.reads = table, []

    async def get_async(self, ids):
        self.reads.append(list(ids))
        return [{"review_id": i, "found": True, "review_body": self.table[i]} if i in self.table
                else {"review_id": i, "found": False} for i in ids]


class Predictor:
    def __init__(self):
        self.calls = []

    def predict(self, texts):
        self.calls.append(list(texts))
        return [Prediction(label=1 if "love" in t else -1, probabilities={"1": 0.9, "-1": 0.1}) for t in texts]


def test_one_read_and_one_prediction_answer_every_request_and_a_missing_id_fails_only_its_own():
    reader, predictor = Reader({1: "love it", 2: "hate it", 3: "love the colour"}), Predictor()
    answers = asyncio.run(predict_stored_batch(reader, predictor, [[1, 2], [3, 99], [3]], heavy=False))
    assert reader.reads == [[1, 2, 3, 99, 3]]
    assert predictor.calls == [["love it", "hate it", "love the colour"]]
    (missing_a, first), (missing_b, second), (missing_c, third) = answers
    assert missing_a == [] and [(p.review_id, p.label) for p in first] == [(1, 1), (2, -1)]
    assert missing_b == [99] and second == []
    assert missing_c == [] and [(p.review_id, p.label) for p in third] == [(3, 1)]


def test_a_heavy_kind_predicts_a_batch_in_a_worker_thread_and_nothing_when_every_id_is_missing():
    reader, predictor = Reader({1: "love it"}), Predictor()
    threads = []
    predict = predictor.predict
    predictor.predict = lambda texts: threads.append(threading.current_thread()) or predict(texts)
    [(missing, predictions)] = asyncio.run(predict_stored_batch(reader, predictor, [[1]], heavy=True))
    assert missing == [] and predictions[0].label == 1
    assert threads and threads[0] is not threading.main_thread()
    assert asyncio.run(predict_stored_batch(reader, predictor, [[7], [8]], heavy=True)) == [([7], []), ([8], [])]
    assert len(predictor.calls) == 1  # no prediction of nothing


def test_readiness_reports_the_warm_up_step_then_the_failing_checks_then_ready():
    state = {"store": "the online feature store at redis://cache:6379 is unreachable (ConnectionError)"}

    async def store():
        return state["store"]

    async def model():
        return None

    async def main():
        readiness = Readiness(ttl=0)
        assert await readiness.reason() == "warming up: starting"
        readiness.warming("loading the model m@champion")
        assert await readiness.reason() == "warming up: loading the model m@champion"
        assert not readiness.warm
        readiness.ready({"model files": model})
        assert await readiness.reason() is None and readiness.status == "warm"
        readiness.add_check("online store", store)  # a store opened after the warm-up
        failing = await readiness.reason()
        state["store"] = None
        return failing, await readiness.reason(), readiness.warm

    failing, recovered, warm = asyncio.run(main())
    assert failing == "the online feature store at redis://cache:6379 is unreachable (ConnectionError)"
    assert recovered is None and warm


def test_a_check_that_hangs_or_breaks_is_a_reason_and_results_are_reused_within_the_ttl():
    runs = []

    async def slow():
        runs.append("slow")
        await asyncio.sleep(5)

    async def broken():
        raise OSError("disk gone")

    async def main():
        readiness = Readiness(ttl=60, timeout=0.05)
        readiness.ready({"online store": slow, "model files": broken})
        first = await readiness.reason()
        second = await readiness.reason()
        return first, second

    first, second = asyncio.run(main())
    assert first == "online store: no answer within 0.05 s; model files: disk gone"
    assert second == first and runs == ["slow"]  # the second probe reused the first round


def test_a_worker_is_ready_only_when_every_live_worker_of_its_server_is_warm(tmp_path):
    members = [101, 102]
    me, other = (WorkerGroup(tmp_path / "server", pid, lambda: members) for pid in members)

    async def reason(readiness):
        return await readiness.reason()

    mine = Readiness(me, ttl=60)  # the checks are cached for a minute; the other workers are not
    mine.ready({})
    assert asyncio.run(reason(mine)) == "1 of 2 workers of this endpoint are still warming up"
    other.mark_warm()
    assert asyncio.run(reason(mine)) is None


def test_a_worker_restarted_beside_warm_ones_warms_up_without_holding_readiness(tmp_path):
    members = [101, 102]
    first, second = (WorkerGroup(tmp_path / "server", pid, lambda: members) for pid in members)
    assert not Readiness(first).joins_warm_workers()  # the first workers of a server: nobody is warm yet
    first.mark_warm()
    second.mark_warm()
    serving = Readiness(first, ttl=0)
    serving.ready({})
    assert asyncio.run(serving.reason()) is None  # all warm once: the group says so for good
    members[1] = 103  # the server restarted the second worker
    restarted = WorkerGroup(tmp_path / "server", 103, lambda: members)
    assert Readiness(restarted).joins_warm_workers()  # it warms up before it takes connections...
    assert asyncio.run(serving.reason()) is None  # ...so nobody waits for it
    for group in (first, second, restarted):
        group.mark_cold()
    assert not (tmp_path / "server").exists()  # the last one out removes the folder


def test_a_marks_folder_of_ours_that_others_could_write_to_is_closed_first(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    WorkerGroup(shared / "server", 1, lambda: [1]).mark_warm()
    assert shared.stat().st_mode & 0o777 == 0o700
    assert (shared / "server" / "1").exists()
