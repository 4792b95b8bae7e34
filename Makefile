# Two commands do everything on a fresh Debian/Ubuntu machine (root or sudo):
#   make run    install what is missing, then serve the app on http://127.0.0.1:7860
#   make test   install what is missing, then run the whole test suite
# A second run skips the installs already done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SUDO   := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Debian packages the tests need beyond packages.txt (the Spaces list): a browser for UI tests
TEST_DEBS := chromium

.PHONY: run test test-fast fuzz system-deps test-deps venv dev-venv bench clean space

run: system-deps venv
	$(PY) app.py

test: system-deps test-deps dev-venv
	$(PY) -m pytest -q tests

# the unit tests only (no app launch, no browser, no CLI subprocesses): under a minute
test-fast: system-deps dev-venv
	$(PY) -m pytest -q -m "not slow" tests

# hostile inputs through the app's and CLI's handlers: prints the table (clean/ok/uncaught/hang/memory/death)
fuzz: system-deps venv
	$(PY) -m composer.bench.fuzz --midi 1000 --abc 1000 --latents 300

bench: system-deps venv
	$(PY) -m composer bench --json

# Debian packages from packages.txt, installed only when one is missing (dpkg -s says so).
system-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $$(grep -v '^#' packages.txt); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi; \
	elif command -v brew >/dev/null 2>&1; then \
	  brew list fluid-synth >/dev/null 2>&1 || brew install fluid-synth; \
	else echo "warning: install FluidSynth yourself (libfluidsynth), then run make again"; fi

test-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi; \
	fi

venv: $(STAMP)
dev-venv: $(DEV_STAMP)

# The stamp depends on requirements.txt, so a changed requirement reinstalls; torch is
# pinned to the CPU build that pip finds locally (an unpinned torch pulls GBs of CUDA).
$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(DEV_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache

# A Hugging Face Space of the app: `make space DIR=../composer-space` writes exactly the files
# the Space runs (the committed ones: app, package, checkpoints, README with its front matter,
# runtime requirements, Debian packages, LFS rules) into DIR, replacing what was there before.
# tests/test_space.py checks the result. Push DIR with git-lfs installed (*.safetensors are LFS).
SPACE_FILES := README.md LICENSE app.py requirements.txt packages.txt .gitattributes composer checkpoints assets
space:
	@test -n "$(DIR)" || { echo "usage: make space DIR=folder" >&2; exit 2; }
	@test "$$(cd "$(DIR)" 2>/dev/null && pwd)" != "$$(pwd)" || { echo "DIR must not be this checkout" >&2; exit 2; }
	@if [ -d "$(DIR)" ] && [ -n "$$(ls -A "$(DIR)" | grep -v '^.git$$')" ] && ! [ -f "$(DIR)/app.py" ]; then \
	  echo "$(DIR) holds other files (no app.py): give an empty folder or an earlier Space" >&2; exit 2; fi
	@mkdir -p "$(DIR)"
	@find "$(DIR)" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
	@git ls-files -z -- $(SPACE_FILES) | tar --null -T - -cf - | tar -xf - -C "$(DIR)"
	@echo "wrote $$(find "$(DIR)" -type f ! -path '*/.git/*' | wc -l) files to $(DIR)"
