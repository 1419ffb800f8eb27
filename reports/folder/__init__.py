"""The results folder's format: the names of its files, tables and columns (schema), its atomic writes and one-line
errors (files), its tables read back typed (results), environment.json's sessions and machines (sessions), and
folders of several machines merged into one (merge). The harness writes this format; the reports read it."""
