"""Task runtimes: where a task's calls run (``@ac.task(config=...)``).

``base``     the ``TaskRuntime`` contract, the loop that watches a call (cancel, timeout), and the run's context
             carried to another process (``ContextSnapshot``)
``process``  ``ac.ProcessTask()``: a fresh Python subprocess per call
``spark``    ``SparkTask()``: a SparkSession reused across the runs of a worker (extra ``anachron[spark]``)
``dask``     ``DaskTask()``: the call runs on a Dask cluster (extra ``anachron[dask]``)

Nothing here is imported by ``import anachron`` but ``base`` and ``process`` (standard library only); the Spark
and Dask modules load their engines when a task that uses them is first called.
"""
