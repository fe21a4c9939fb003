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
# the SPF/DMARC tests start on loopback (the binary only: no service grabbing port 53);
# systemd gives the tests systemd-analyze (verify, security), procps the unit's /bin/kill;
# postfix: the milter tests start a private Postfix instance of their own (loopback
# ports, config and queue under a temporary directory); haproxy: the load-balancer
# tests run its binary in front of two gateways with the PROXY protocol (their own
# config and loopback ports; the Debian service is stopped and disabled below).
# clamav-daemon: clamd, the virus scanner the shipped config points at
# (unix:/run/clamav/clamd.ctl; it runs once freshclam has fetched its signatures), and
# the tests run private clamd instances of their own (own socket, own signatures made
# with sigtool from clamav; never the system's daemon, never a download).
# mandoc: the tests lint the man pages `make install` puts in place (mandoc -Tlint).
# logrotate: the tests run the shipped systemd/gateway.logrotate (retention by age).
APT_PACKAGES := python3 python3-venv python3-pip libmagic1 ca-certificates zip 7zip gnupg \
                dnsmasq-base systemd procps postfix haproxy clamav-daemon clamav mandoc \
                logrotate
# For `make bench` only: Postfix's smtp-source and smtp-sink load generator and sink.
BENCH_APT_PACKAGES := postfix

export DEBIAN_FRONTEND := noninteractive
# Wait (up to 10 minutes) for the dpkg lock instead of failing when unattended-upgrades
# or another apt run holds it, as on a freshly booted machine. `apt-get update` takes
# the package-list lock, which that option does not wait for on every apt version:
# apt_install retries it, APT_LOCK_TRIES times APT_LOCK_PAUSE seconds (10 minutes too).
APT_GET := apt-get -o DPkg::Lock::Timeout=600
APT_LOCK_TRIES ?= 60
APT_LOCK_PAUSE ?= 10
# invoke-rc.d asks this script whether a package may start its service (Debian policy
# 9.3.3.1); the tests point it elsewhere.
POLICY_RC_D ?= /usr/sbin/policy-rc.d
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test deps venv system-deps lint typecheck unit clean

help:
	@echo "make run    install what is missing, then start the gateway ($(CONFIG))"
	@echo "make test   install what is missing, then ruff, mypy and pytest"
	@echo "make deps   only install (system packages, $(VENV), the project)"
	@echo "make bench  benchmarks (installs postfix for smtp-source/smtp-sink)"
	@echo "make install  (root) install under /opt/gateway with the systemd unit"
	@echo "make clean  remove $(VENV) and caches"

run: deps
	mkdir -p var/log var/mail
	exec $(VENV)/bin/gateway serve --config $(CONFIG)

test: deps lint typecheck unit
# The tests start private instances of what they need (clamd, Postfix, HAProxy...):
# installing for them starts none of the system's services (invoke-rc.d's
# policy-rc.d, exit 101 = "action forbidden", only while apt runs and only when the
# machine has none of its own). `make run` installs the same packages and lets
# clamav-daemon and clamav-freshclam start, as the shipped config uses them.
test: APT_NO_START := 1

lint:
	$(VENV)/bin/ruff check gateway tests

typecheck:
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/pytest -q

deps: venv

venv: system-deps $(STAMP)

# apt only when a package is missing: nothing to do (and no root needed) on a
# machine that has them all. $(1): the packages.
define apt_install
	@missing=""; \
	for pkg in $(1); do \
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
	  tries=0; \
	  until out=$$($(APT_GET) update -q 2>&1); do \
	    echo "$$out" >&2; tries=$$((tries + 1)); \
	    if ! echo "$$out" | grep -q "Could not get lock" || [ $$tries -ge $(APT_LOCK_TRIES) ]; then \
	      exit 1; \
	    fi; \
	    echo "waiting for the apt package-list lock (another apt run, e.g. unattended-upgrades)" >&2; \
	    sleep $(APT_LOCK_PAUSE); \
	  done; \
	  echo "$$out"; \
	  if [ "$(APT_NO_START)" = 1 ] && [ ! -e $(POLICY_RC_D) ]; then \
	    trap 'rm -f $(POLICY_RC_D)' EXIT; \
	    printf '#!/bin/sh\n# make test: packages installed, services not started\nexit 101\n' \
	      > $(POLICY_RC_D); chmod 0755 $(POLICY_RC_D); \
	  fi; \
	  $(APT_GET) install -y -q --no-install-recommends $$missing; \
	fi
endef

# Postfix is installed as "No configuration": no main.cf, so the package sets up no
# mail system and starts nothing on port 25; the tests run their own instances.
system-deps:
	@if [ "$$(id -u)" -eq 0 ] && command -v debconf-set-selections >/dev/null; then \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	fi
	$(call apt_install,$(APT_PACKAGES))
	@# The haproxy package enables and starts its service; the tests need only the binary.
	@if [ "$$(id -u)" -eq 0 ] && [ -e /lib/systemd/system/haproxy.service ]; then \
	  if [ -d /run/systemd/system ]; then \
	    if systemctl is-enabled -q haproxy 2>/dev/null || systemctl is-active -q haproxy; then \
	      systemctl disable -q --now haproxy || true; fi; \
	  else \
	    systemctl disable -q haproxy 2>/dev/null || true; \
	    service haproxy stop >/dev/null 2>&1 || true; \
	  fi; \
	fi

# `make bench` uses Postfix's smtp-source and smtp-sink test programs (the tests
# need Postfix too: it is in APT_PACKAGES). Installed as "No configuration": no
# main.cf, so no mail system is set up; and if one runs anyway it is stopped, so
# nothing is left listening on port 25.
bench-deps: deps
	@if [ "$$(id -u)" -eq 0 ] && command -v debconf-set-selections >/dev/null; then \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	fi
	$(call apt_install,$(BENCH_APT_PACKAGES))
	@if [ "$$(id -u)" -eq 0 ]; then \
	  if [ -d /run/systemd/system ] && systemctl is-enabled -q postfix 2>/dev/null; then \
	    systemctl disable -q --now postfix || true; \
	  fi; \
	  if /usr/sbin/postfix status >/dev/null 2>&1; then /usr/sbin/postfix stop || true; fi; \
	fi
	@command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null \
	  || { echo "smtp-source/smtp-sink not found (package postfix)" >&2; exit 1; }

$(VENV)/bin/python: | system-deps
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last successful install.
$(STAMP): pyproject.toml | system-deps $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Inspection time and peak memory for 2 KB, 1 MB and 25 MB messages, then SMTP
# throughput, latency and memory through the gateway vs straight to smtp-sink
# (benchmarks, not tests: nothing is asserted).
.PHONY: bench bench-deps
bench: bench-deps
	$(VENV)/bin/python bench/inspect.py
	$(VENV)/bin/python bench/smtp.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

# `make install` (as root): the program in /opt/gateway (its own virtualenv), the
# systemd unit, tmpfiles.d and logrotate files, the man pages gateway(8) and
# gateway.yaml(5) in /usr/share/man, the config in /etc/gateway (only
# when missing: an administrator's edits are never overwritten) and the dedicated
# system user `gateway`. Safe to run again (upgrades the program in place).
# DESTDIR=DIR installs the files into DIR instead and touches nothing on the
# system (no user, no virtualenv unless INSTALL_VENV=yes, no systemctl).
DESTDIR     ?=
PREFIX      := /opt/gateway
ETCDIR      := /etc/gateway
SERVICE_USER := gateway
INSTALL_VENV ?= $(if $(DESTDIR),no,yes)
INSTALL_TREE := gateway rules config systemd pyproject.toml README.md README.ms.md

.PHONY: install
install:
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -ne 0 ]; then \
	  echo "make install needs root (or DESTDIR=DIR to stage the files)" >&2; exit 1; fi
	@if [ -z "$(DESTDIR)" ] && ! getent passwd $(SERVICE_USER) >/dev/null; then \
	  echo "creating system user $(SERVICE_USER)"; \
	  useradd --system --user-group --home-dir /var/lib/gateway --no-create-home \
	    --shell /usr/sbin/nologin --comment "e-mail policy gateway" $(SERVICE_USER); \
	fi
	install -d -m 0755 $(DESTDIR)$(PREFIX)
	rm -rf $(DESTDIR)$(PREFIX)/gateway $(DESTDIR)$(PREFIX)/rules
	tar -C . --exclude=__pycache__ --exclude='*.pyc' -cf - $(INSTALL_TREE) \
	  | tar -C $(DESTDIR)$(PREFIX) --no-same-owner -xf -
	@if [ "$(INSTALL_VENV)" = yes ]; then \
	  [ -x $(DESTDIR)$(PREFIX)/.venv/bin/python ] || $(PYTHON) -m venv $(DESTDIR)$(PREFIX)/.venv; \
	  $(DESTDIR)$(PREFIX)/.venv/bin/pip install -q --upgrade $(DESTDIR)$(PREFIX); \
	fi
	install -D -m 0644 systemd/gateway.service $(DESTDIR)/etc/systemd/system/gateway.service
	install -D -m 0644 systemd/gateway.tmpfiles $(DESTDIR)/etc/tmpfiles.d/gateway.conf
	install -D -m 0644 systemd/gateway.logrotate $(DESTDIR)/etc/logrotate.d/gateway
	install -D -m 0644 man/gateway.8 $(DESTDIR)/usr/share/man/man8/gateway.8
	install -D -m 0644 man/gateway.yaml.5 $(DESTDIR)/usr/share/man/man5/gateway.yaml.5
	install -d -m 0750 $(DESTDIR)$(ETCDIR)
	@if [ ! -e $(DESTDIR)$(ETCDIR)/gateway.yaml ]; then \
	  install -m 0640 config/gateway.production.yaml $(DESTDIR)$(ETCDIR)/gateway.yaml; \
	  echo "installed $(DESTDIR)$(ETCDIR)/gateway.yaml"; \
	else echo "kept $(DESTDIR)$(ETCDIR)/gateway.yaml (yours)"; fi
	@if [ ! -e $(DESTDIR)$(ETCDIR)/rules ]; then \
	  cp -R rules $(DESTDIR)$(ETCDIR)/rules; chmod -R u=rwX,g=rX,o= $(DESTDIR)$(ETCDIR)/rules; \
	  echo "installed $(DESTDIR)$(ETCDIR)/rules"; \
	else echo "kept $(DESTDIR)$(ETCDIR)/rules (yours)"; fi
	@if [ -z "$(DESTDIR)" ]; then \
	  chown -R root:$(SERVICE_USER) $(ETCDIR); \
	  if [ -d /run/systemd/system ]; then \
	    systemd-tmpfiles --create /etc/tmpfiles.d/gateway.conf; \
	    systemctl daemon-reload; \
	    echo "installed: systemctl enable --now gateway"; \
	  else echo "installed (systemd is not running here: no daemon-reload)"; fi; \
	fi
