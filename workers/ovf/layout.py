"""Names in a package directory that is still being written (see workers/ovf/package.py)."""

EXPORTING_MARKER = ".hcc-exporting"
PART_SUFFIX = ".part"
PRIVATE_PREFIX = ".hcc"
