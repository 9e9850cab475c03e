"""The course's tools: the headless runner, grading, the site, benchmarks (`python -m course --help`)."""

import sys

# nbformat validates notebooks with jsonschema, whose format checkers import rfc3987-syntax when it is
# installed (jupyter-events pulls it in). That package builds some 35 Lark grammars at import: 1.2 s of
# every process that reads a notebook (each grading worker, each command), for the "iri" format, which no
# notebook schema uses (jsonschema issues #1392 and #1428). Without it jsonschema skips that one check.
sys.modules.setdefault("rfc3987_syntax", None)
