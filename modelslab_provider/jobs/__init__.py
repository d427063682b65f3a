"""The paid-job engine, below the operators: submit, record, reconnect, wait and map outcomes, once.

:mod:`.engine` runs a job's try, :mod:`.waits` its wait, :mod:`.store` keeps its record for the
next try, :mod:`.outcomes` maps what happened to Airflow exceptions.
"""
