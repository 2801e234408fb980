"""``tim serve``: an OpenAI-compatible server over one model, with continuous batching.

- :class:`~tim.serve.batcher.Batcher` (``tim.serve.batcher``): one engine thread steps
  every live request's run together and admits new ones between steps.
- :func:`~tim.serve.app.create_app` and :class:`~tim.serve.app.Server` (``tim.serve.app``):
  the FastAPI app (``POST /v1/chat/completions``, ``GET /v1/models``), behind the API-key
  and body-size guard (``tim.serve.guard``).
- :class:`~tim.serve.config.ServeConfig`: the limits a request must keep.
- ``tim serve`` (:func:`main_serve`): the command line.

Importing this package imports neither FastAPI nor torch; ``tim.serve.app`` needs the
``serve`` extra (``pip install 'tim-runtime[serve]'``).
"""

from tim.serve.config import ServeConfig

__all__ = ["ServeConfig", "main_serve"]


def main_serve(argv=None) -> int:
    """``tim serve``: see :mod:`tim.serve.cli`."""
    from tim.serve.cli import main_serve as main

    return main(argv)
