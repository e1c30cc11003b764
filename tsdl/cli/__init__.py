"""The `tsdl` command line: a thin shell over the Python API in `tsdl.api`."""
