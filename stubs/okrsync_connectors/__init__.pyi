# mypy's view of the import package `okrsync_connectors`. At run time it is the folder
# `connectors/`, installed under that name by a setuptools package-dir mapping; mypy cannot
# follow the editable install's import hook, so each module here re-exports the real one and
# the types checked are those of `connectors/` itself. A test importing another connector
# module adds a one-line file here.
