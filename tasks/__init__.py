"""zoo's built-in task plugins, registered through the `zoo.tasks` entry-point group.

Imported as `zoo_tasks` (never `tasks`), so a user's own `tasks.py` cannot shadow it.
"""
