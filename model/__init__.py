"""checkout-age model layer: dataset checks, Keras age regressor, evaluation, registry.

Imports nothing from `jobs/` or `dags/`, and never pyspark or airflow.
"""
