"""The stream worker's parts, one job each; :mod:`bridge.worker` assembles them into a Faust app.

- :mod:`~bridge.stream.handler`: one batch in, processed, persisted and published (``StreamWorker``);
- :mod:`~bridge.stream.retry`: retrying a failed step with backoff, or stopping the worker;
- :mod:`~bridge.stream.dbthread`: the one thread that does all database work, timed;
- :mod:`~bridge.stream.publisher`: dead letters and the outbox, out to the broker;
- :mod:`~bridge.stream.health`: liveness, readiness and the database checks behind them;
- :mod:`~bridge.stream.web`: the pages ``/metrics``, ``/healthz`` and ``/readyz``;
- :mod:`~bridge.stream.lag`: committed offsets and consumer lag;
- :mod:`~bridge.stream.shutdown`: a Faust worker whose stop is bounded;
- :mod:`~bridge.stream.tuning`: the garbage collector's and the consumer's performance settings.

None of them holds SQL: the statements are the store's (``bridge/store/``). Their log lines all
carry the logger name ``bridge.worker``, as the worker's lines did before it was split.
"""

#: The logger of every part of the stream worker.
LOGGER = "bridge.worker"
