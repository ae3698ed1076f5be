"""custpipe on Apache Spark (`engine: spark` in pipeline.yaml; `pip install custpipe[spark]`).

The session (:mod:`custpipe.spark.session`) and Splink's Spark backend for the pair scoring
(:mod:`custpipe.spark.scoring`). pyspark is an optional dependency: nothing here is imported
unless a deployment or a run asks for the Spark engine.
"""
