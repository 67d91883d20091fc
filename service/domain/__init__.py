"""The domain: budgets, jobs, datasets, releases and the records every action writes.

Called by the routes, the scheduler, auto-release and the CLI; never imports FastAPI.
"""
