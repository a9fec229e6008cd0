# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real model servers the tests call as remote peers, each in a virtualenv of its own: MLServer and
# KServe pin web-framework versions that clash with ours and with each other (tests/peers/*.txt).
PEERS       := .venv-peers
PEERS_STAMP := $(PEERS)/.installed

.PHONY: demo test test-postgres lint bench clean install install-peers docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The image's environment without the image (no container runtime here): the package's dependencies
# as the Dockerfile installs them, with no test extras. tests/deploy/test_image.py installs the current
# source into it (no download) and runs the image's own commands there.
IMAGE_VENV  := .venv-image
IMAGE_STAMP := $(IMAGE_VENV)/.installed

$(IMAGE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(IMAGE_VENV)
	$(IMAGE_VENV)/bin/pip install --quiet --upgrade pip setuptools
	$(IMAGE_VENV)/bin/pip install --quiet '.[postgres,kubernetes]'
	touch $(IMAGE_STAMP)

install: $(STAMP) $(IMAGE_STAMP) $(PEERS_STAMP)

# Each peer gets this environment's scikit-learn, so the model a test saves with joblib loads there.
$(PEERS_STAMP): tests/peers/mlserver.txt tests/peers/kserve.txt | $(STAMP)
	rm -rf $(PEERS)
	$(PYTHON) -m venv $(PEERS)/mlserver
	$(PYTHON) -m venv $(PEERS)/kserve
	sklearn="scikit-learn==$$($(BIN)/python -c 'import sklearn; print(sklearn.__version__)')" && \
	$(PEERS)/mlserver/bin/pip install --quiet -r tests/peers/mlserver.txt "$$sklearn" && \
	$(PEERS)/kserve/bin/pip install --quiet -r tests/peers/kserve.txt "$$sklearn"
	touch $(PEERS_STAMP)

install-peers: $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/pitstop demo

# The suite on TEST_PROCESSES processes (pytest-xdist), then the tests marked slow on their own: their
# outcome rests on real time (latency guardrails, real clocks), which a busy neighbour would distort.
# Exit status 5 is pytest's "nothing selected" (PYTEST_ARGS naming no slow test). Tests marked with
# one xdist_group run on one process, so an expensive session fixture (a model server) starts once.
TEST_PROCESSES ?= 2

test: $(STAMP) $(IMAGE_STAMP) $(PEERS_STAMP)
	$(BIN)/pytest -m "not slow" -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs/gen_reference.py
	$(BIN)/ruff format --check src tests bench docs/gen_reference.py
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site into site/; --strict turns every warning (a broken link, a missing page) into
# a failure. Reference pages are generated from the code at build time (docs/gen_reference.py). The
# test extra holds the docs extra's packages (tests/test_docs.py builds the site too).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python bench/gateway.py --seconds 2 --warmup 0.5 --rounds 12 --pin
	$(BIN)/python bench/shadow_inprocess.py --seconds 8 --rounds 4

clean:
	rm -rf $(VENV) $(IMAGE_VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
