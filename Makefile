# CNN Lab. `make lab` sets everything up and runs the whole series; `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB     ?=
P      ?=

.PHONY: setup lab smoke test test-labs test-browser jupyter lint bench student grade gradescope lms site clean

# Re-running is quick: pip runs again only when a requirements or project file changed.
setup: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Every notebook under the full profile into runs/full/ (NB="02 03" picks some; P="-p epochs=3" passes parameters).
lab: setup
	$(PY) -m course run $(NB) --profile full $(P)

smoke: setup
	$(PY) -m course run $(NB) --profile smoke $(P)

# JupyterLab on the notebooks folder (JUPYTER_ARGS="--port 8899 --no-browser" passes options). Kernels talk
# to it over local IPC sockets, not TCP (Windows has no IPC sockets: run .venv\Scripts\jupyter lab there).
JUPYTER_ARGS ?=
jupyter: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --KernelManager.transport=ipc $(JUPYTER_ARGS)

# ruff's lint and format, and mypy on labkit (pyproject.toml says how strict).
lint: setup
	$(VENV)/bin/ruff check labkit course tests
	$(VENV)/bin/ruff format --check labkit course tests
	$(VENV)/bin/mypy

# lint, unit tests, and every notebook executed under the smoke profile.
test: setup lint
	$(VENV)/bin/pytest

# The real labs through the grader (every master full marks, every untouched student version zero and
# still running to its end, a synthetic class of lab 01, Gradescope's runner on lab 01): about two smoke
# series of work, so not part of `make test`, whose grading tests use a tiny lab. CI runs both.
test-labs: setup
	$(VENV)/bin/pytest -m labs

# JupyterLab in Debian's Chromium, driven by Playwright: labs 05-07 under smoke, every explorer's controls,
# no console errors, screenshots in runs/browser/ (needs `apt-get install chromium`; see tests/browser/).
test-browser: setup
	$(VENV)/bin/pytest tests/browser -m browser

bench: setup
	$(PY) -m course bench $(BENCH)

# Student versions of the labs in student/, made by nbgrader generate_assignment from the masters in
# notebooks/: answers replaced by placeholders, hidden tests removed, nothing else beside them.
student: setup
	$(PY) -m course student --out student

# Grade every *.ipynb in SUBMISSIONS (the file's stem is the student) into GRADES: grades.csv and
# feedback/<student>.md; the written answers side by side in GRADES/questions/, marked through MARKS=marks.csv
# (student,question,points[,comment]); CONFIG=course.toml (due dates, late policy) and TIMES=times.csv
# (student,timestamp) add late penalties; GRADES/report.html is the class report. P="-p profile=full
# --time-limit 1800" passes options; unchanged submissions are not regraded.
SUBMISSIONS ?= submissions
GRADES      ?= runs/grades
grade: setup
	$(PY) -m course grade $(SUBMISSIONS) --out $(GRADES) $(if $(MARKS),--marks $(MARKS)) \
		$(if $(CONFIG),--config $(CONFIG)) $(if $(TIMES),--timestamps $(TIMES)) $(P)

# Canvas and Moodle gradebook imports in GRADES/lms/ from GRADES/grades.csv and the class list ROSTER (a Canvas
# export works as it is); LMS_ARGS='--canvas-id 12345 --missing zero' passes options (python -m course lms -h).
ROSTER   ?= roster.csv
LMS_ARGS ?=
lms: setup
	$(PY) -m course lms $(GRADES) --roster $(ROSTER) $(LMS_ARGS)

# Gradescope autograder of lab LAB: OUT/autograder_<lab>.zip (setup.sh, run_autograder, the project, the lab's
# master) to upload to the assignment; P="--time-limit 900 --visibility visible" passes options.
LAB ?= 01
OUT ?= runs/gradescope
gradescope: setup
	$(PY) -m course gradescope $(LAB) --out $(OUT) $(P)

# The course site: the executed labs of a run as a static book in runs/site/ (open runs/site/index.html, or
# serve the folder). SITE_RUN=runs/smoke after `make smoke`; AUDIENCE=instructor shows the solutions
# (into runs/site-instructor/).
SITE_RUN ?= runs/full
AUDIENCE ?= student
site: setup
	$(PY) -m course site --run $(SITE_RUN) --audience $(AUDIENCE)

clean:
	rm -rf runs student .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
