"""The bodies a finished, late, cancelled or failed job becomes."""

from __future__ import annotations

import json

from tim.engine.record import RunEvent, RunRecord
from tim.serve.batcher import Ending, JobDone
from tim.serve.responses import Refusal, Reply, event_line, reply_of

ARGS = {"run_id": "7-ab", "num_prompt_tokens": 12, "max_new_tokens": 30, "question": "q",
        "model": "m", "timeout_s": 5.0}


def record(num_generated, error=None):
    rec = RunRecord("parallel", "buffer:1", "shift", [1, 2, 3])
    rec.num_generated, rec.error = num_generated, error
    return rec


def test_a_run_out_of_tokens_is_finish_reason_length_with_its_error():
    reply = reply_of(JobDone(Ending.FINISHED, record(30, "max_new_tokens=30 reached")), **ARGS)
    assert isinstance(reply, Reply)
    assert (reply.content, reply.finish_reason) == ("", "length")
    assert reply.usage == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    assert reply.tim["error"] == "max_new_tokens=30 reached" and reply.tim["run_id"] == "7-ab"


def test_a_late_job_is_a_504_that_says_what_to_change():
    refusal = reply_of(JobDone(Ending.TIMEOUT, record(9)), **ARGS)
    assert isinstance(refusal, Refusal) and refusal.status == 504
    error = refusal.body["error"]
    assert error["code"] == "request_timeout" and "5 s (9 tokens generated)" in error["message"]
    assert "--request-timeout" in error["message"]


def test_failed_and_cancelled_jobs_are_server_errors():
    failed = reply_of(JobDone(Ending.FAILED, None, "boom"), **ARGS)
    assert failed.status == 500 and "boom" in failed.body["error"]["message"]
    stopped = reply_of(JobDone(Ending.CANCELLED, None, "the server is shutting down"), **ARGS)
    assert stopped.status == 503 and "shutting down" in stopped.body["error"]["message"]


def test_an_event_line_is_one_sse_comment_of_json():
    line = event_line(RunEvent(4, "tool_called", (0, 1), {"name": "f", "parameters": {"s":
                                                                                      "a\nb"}}))
    assert line.startswith(": tim-event ") and line.endswith("\n\n") and line.count("\n") == 2
    data = json.loads(line[len(": tim-event "):])
    assert data == {"step": 4, "kind": "tool_called", "stream": [0, 1],
                    "detail": {"name": "f", "parameters": {"s": "a\nb"}}}
