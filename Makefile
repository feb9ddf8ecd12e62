# LLM from Scratch: `make book` builds the book, `make test` checks everything.
# Both set up what they need on first use (a virtual environment in .venv, and the TeX
# packages for the PDF). PROFILE is smoke, cpu, gpu or auto (the default).

PROFILE ?= auto
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRAS  ?= book,test,kernels,distributed,eval
PYTEST_ARGS ?=

.PHONY: setup tex book pdf html test export clean distclean help

help:
	@echo "make book [PROFILE=smoke|cpu|gpu|auto]  execute the chapters, build PDF + HTML"
	@echo "make pdf | make html                     only one of the two outputs"
	@echo "make test                                unit tests, chapters (smoke), smoke PDF"
	@echo "make test PYTEST_ARGS='-m \"not chapters and not pdf\"'   the fast part only"
	@echo "make export                              regenerate llm_from_scratch/ from chapters"
	@echo "make setup                               only the environment (.venv and TeX)"
	@echo "make clean                               remove _build/ (artifacts/ stays)"

setup: $(VENV)/.installed tex

$(VENV)/.installed: pyproject.toml tools/setup_env.sh
	@VENV=$(VENV) EXTRAS=$(EXTRAS) bash tools/setup_env.sh python
	@touch $@

tex:
	@bash tools/setup_env.sh tex

book: setup
	@$(PY) tools/book.py --profile $(PROFILE) --pdf --html

pdf: setup
	@$(PY) tools/book.py --profile $(PROFILE) --pdf

html: $(VENV)/.installed
	@$(PY) tools/book.py --profile $(PROFILE) --html

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

export: $(VENV)/.installed
	@$(PY) tools/export.py

clean:
	rm -rf _build

distclean: clean
	rm -rf $(VENV) artifacts
