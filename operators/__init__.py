"""Thin Airflow adapters around the stage functions of ``tasks``."""
