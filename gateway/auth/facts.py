"""The sender authentication of one message, evaluated lazily, at most once.

Checks are pure and never do I/O themselves; the `sender_auth` condition reads
`Context.auth.results`, and only that first read runs `gateway.auth.authenticate`
(SPF, DKIM over the message's received bytes, ARC, then DMARC) through the policy's
shared resolver. So DNS is
queried only for a message on which some rule actually reaches a `sender_auth`
condition, and once per message however many rules ask. Whether it ran is
visible afterwards (`evaluated`), so the pipeline can log the results and add an
Authentication-Results field only when they exist.

Facts over a header block alone (`header_only`, the proxy's cut-through deciding its
header changes before the body arrives) can answer only when the message carries no
DKIM-Signature and no ARC-Seal field: then DKIM is `none` whatever the body says. A
signed message raises `BodyNeeded` at the first read; the proxy then stores and
forwards that one message, and the full inspection looks everything up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import gateway.auth as auth
from gateway.addresses import address_domain
from gateway.auth import AuthResults, DkimResult, DmarcResult, SpfResult
from gateway.envelope import Envelope

if TYPE_CHECKING:
    from gateway.auth.resolver import Resolver
    from gateway.message.view import MessageView


class BodyNeeded(Exception):
    """The sender authentication of this message depends on its body (DKIM, ARC)."""


def _helo_domain(helo: str) -> str:
    return helo.strip().strip("[]").rstrip(".").lower()


class AuthFacts:
    """SPF, DKIM, ARC and DMARC results for one message; `results` looks them up on
    first use (raises `BodyNeeded` for a signed message's header block alone)."""

    def __init__(self, resolver: Resolver | None, envelope: Envelope, view: MessageView,
                 *, looked_up: AuthResults | None = None, header_only: bool = False) -> None:
        """`looked_up`: results found earlier for this same message (the proxy's
        cut-through reads them when the header block arrives); the first check that
        asks gets them without DNS, and only then do they count as evaluated, so the
        message's verdict (and its Authentication-Results) still follows what the
        rules reached, and a second look-up can never answer differently.

        `header_only`: `view` is a header block whose body has not arrived (see the
        module's docstring)."""
        self._resolver = resolver
        self._header_only = header_only
        self._envelope = envelope
        self._view = view
        self._results: AuthResults | None = None
        self._looked_up = looked_up

    @classmethod
    def known(cls, results: AuthResults, envelope: Envelope, view: MessageView) -> AuthFacts:
        """Facts whose results are already known (a replay, `gateway check` tests)."""
        facts = cls(None, envelope, view)
        facts._results = results
        return facts

    @property
    def mail_from(self) -> str:
        return self._envelope.mail_from

    @property
    def helo(self) -> str:
        return self._envelope.helo

    @property
    def from_domain(self) -> str:
        """Domain of the first header From address ('' when there is none)."""
        addresses = self._view.from_addresses
        return address_domain(addresses[0]) if addresses else ""

    @property
    def evaluated(self) -> bool:
        """Whether some rule asked, i.e. the results exist (and DNS was queried)."""
        return self._results is not None

    @property
    def evaluated_results(self) -> AuthResults | None:
        """The results if some rule asked for them, else None (never triggers a look-up)."""
        return self._results

    @property
    def results(self) -> AuthResults:
        if self._results is None:
            self._results = self._authenticate()
        return self._results

    def _authenticate(self) -> AuthResults:
        if self._looked_up is not None:
            return self._looked_up
        if self._header_only and (self._view.raw_header_values("DKIM-Signature")
                                  or self._view.raw_header_values("ARC-Seal")):
            raise BodyNeeded("DKIM or ARC signatures: verifying them needs the body")
        if self._resolver is None:
            # No resolver (a bare engine in a test or tool): as if DNS were down, so a
            # rule on sender_auth tempfails rather than passes.
            identity = address_domain(self.mail_from) or _helo_domain(self.helo)
            reason = "no resolver configured"
            return AuthResults(SpfResult("temperror", identity, reason),
                               DmarcResult("temperror", self.from_domain, reason=reason),
                               (DkimResult("temperror", "", "", reason=reason),))
        return auth.authenticate(self._resolver, client_ip=self._envelope.client_ip,
                                 helo=self.helo, mail_from=self.mail_from,
                                 from_domain=self.from_domain,
                                 message=b"" if self._header_only else self._view.raw)
