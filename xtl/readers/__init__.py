"""Readers of raw release formats, one module per format; each returns rows in the schema of
the task's Hub counterpart, plus the files it read (for the data fingerprint).

A reader is `read(folder, split, language) -> (rows, files)`; a task names it as `raw_reader`
with the folder under the raw root as `raw_path`.
"""
