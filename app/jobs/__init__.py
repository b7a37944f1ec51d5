"""RQ entry points: queues, the worker and the scheduler, and the jobs they run."""
