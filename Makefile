# E-mail policy gateway: `make run` starts it, `make test` checks it.
# Works as root on a fresh Debian 12 machine (installs the few system packages it
# needs) and on a developer machine that already has them (installs nothing).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    := .venv
STAMP   := $(VENV)/.installed
CONFIG  ?= config/gateway.yaml
# System packages: the interpreter, venv + pip to build .venv, and libmagic for
# python-magic (real file types of attachments); zip, 7zip and gpg make the
# encrypted archives and PGP messages the tests inspect; dnsmasq-base is the DNS server
# the SPF/DMARC tests start on loopback (the binary only: no service grabbing port 53).
APT_PACKAGES := python3 python3-venv python3-pip libmagic1 ca-certificates zip 7zip gnupg \
                dnsmasq-base

export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test deps venv system-deps lint typecheck unit clean

help:
	@echo "make run    install what is missing, then start the gateway ($(CONFIG))"
	@echo "make test   install what is missing, then ruff, mypy and pytest"
	@echo "make deps   only install (system packages, $(VENV), the project)"
	@echo "make clean  remove $(VENV) and caches"

run: deps
	mkdir -p var/log var/mail
	exec $(VENV)/bin/gateway serve --config $(CONFIG)

test: deps lint typecheck unit

lint:
	$(VENV)/bin/ruff check gateway tests

typecheck:
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/pytest -q

deps: venv

venv: system-deps $(STAMP)

# apt only when a package is missing: nothing to do (and no root needed) on a
# machine that has them all.
system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "missing system packages:$$missing (no apt-get: install them by hand)" >&2; exit 1; \
	  fi; \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "missing system packages:$$missing - run as root or: sudo apt-get install$$missing" >&2; \
	    exit 1; \
	  fi; \
	  echo "installing system packages:$$missing"; \
	  apt-get update -q; \
	  apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/bin/python: | system-deps
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last successful install.
$(STAMP): pyproject.toml | system-deps $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Inspection time and peak memory for 2 KB, 1 MB and 25 MB messages (not a test).
.PHONY: bench
bench: deps
	$(VENV)/bin/python bench/inspect.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
