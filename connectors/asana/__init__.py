"""The Asana plug-in (`type = "asana"`): tasks, milestones and sections of projects."""

from .connector import TASK_FIELDS, AsanaConnector

__all__ = ["TASK_FIELDS", "AsanaConnector"]
