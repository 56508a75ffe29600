"""What the tests, the benchmark and the long runs share: a harness around the service.

Scratch databases (databases.py), the Procfile's gunicorn on a free port (served.py), seeders
(seeders.py), the balance invariant (invariant.py) and the model of the rules (model.py).
Importable from the repository's root: pytest's pythonpath is ".", and the benchmark and the
load run are started as `python -m bench.run` and `python -m reliability.load`.
"""

# The bearer secret the tests' service is configured with.
SECRET = "test-secret-0123456789abcdef"
