"""Tooling around the stream: what operators, subscribers, tests and benchmarks run beside it.

``simulate`` (synthetic traffic of every platform), ``demo`` (the README's first command),
``broker`` (the embedded Kafka-compatible broker), ``admin`` (topic administration and broker
checks), ``topicio`` (plain Kafka I/O), ``backfill`` (history files through the pipeline),
``transcript`` and ``export`` (a learner's credits as subscribers see them). The stream itself
is ``bridge/worker.py`` with ``bridge/stream/``, ``bridge/pipeline/``, ``bridge/core/`` and
``bridge/store/``.
"""
