"""The peers: FastAPI in front of SAQ and of arq, with no-op jobs, the same REST shape as
taskbeat (POST /v1/tasks -> 202 {"task_id"}; GET /v1/tasks/{id} -> {"status"}).

They run from their own virtualenv (var/bench/peers-venv): arq pins redis<6, the service
uses redis 8, and the service under test must keep its own dependencies.
"""
