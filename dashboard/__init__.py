"""The pairflow live dashboard: a Panel server app fed by one store poller or Kafka consumer.

``pairflow dashboard --store PATH`` (or ``panel serve dashboard/app.py`` with
``PAIRFLOW_STORE`` / ``PAIRFLOW_KAFKA`` set) serves it; see ``docs/dashboard.md``.
"""
