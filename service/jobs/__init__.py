"""Jobs: the runner, the job child, Celery, the scheduler and the sweep (worker side)."""
