# The two commands: `make demo` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mqformer-stamp
PYTEST_ARGS ?=

.PHONY: demo demo-baseline test env clean-env

$(STAMP): setup.py tools/install.sh requirements/*.txt
	bash tools/install.sh $(VENV)
	touch $@

env: $(STAMP)

demo: env
	$(PY) tools/demo.py --work-dir work_dirs/demo

# the reference row: mmdet's Mask2Former on the same data for the same time
demo-baseline: env
	$(PY) tools/demo.py --work-dir work_dirs/demo --baseline-only

# both cores: two pytest workers of one thread each (the subprocess-heavy tests
# overlap), a test file's tests in one worker (its fixtures built once);
# PYTEST_ARGS="-n 0" runs them one by one
test: env
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -n 2 --dist loadfile $(PYTEST_ARGS)

clean-env:
	rm -rf $(VENV)
