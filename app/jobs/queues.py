"""Queue names and the Redis connection, made on first use (never at import)."""

from flask import Flask, current_app
from redis import Redis
from rq import Queue

PROVISIONING = "provisioning"  # command execution
PERIODIC = "periodic"  # scheduler-enqueued housekeeping
ALL_QUEUES = (PROVISIONING, PERIODIC)


def init_queues(app: Flask) -> None:
    """Reserve the app's slot for its Redis client; the client itself is made when first asked for."""
    app.extensions["omegaops.redis"] = None


def get_redis() -> Redis:
    """The app's Redis client (one per process; redis-py pools its connections)."""
    redis = current_app.extensions.get("omegaops.redis")
    if redis is None:
        redis = Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
        )
        current_app.extensions["omegaops.redis"] = redis
    return redis


def get_queue(name: str) -> Queue:
    """The RQ queue ``name`` on the app's Redis."""
    return Queue(name, connection=get_redis())
