"""The registry of checks, by the name rule files use under `when:`.

Registration is explicit: a check module that is not listed here cannot be
used, and a rule naming an unknown condition fails at load time.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.checks import (
    antivirus_failed,
    antivirus_skipped,
    attachment_name,
    attachment_size,
    attachment_type,
    attachment_unreadable,
    auto_forwarded,
    body_matches,
    classification,
    client_ip,
    from_domain,
    from_in,
    inspection_incomplete,
    link_domain,
    marking_mismatch,
    message_size,
    mime_defect,
    null_sender,
    office_macros,
    password_in_message,
    recipient_domain,
    recipient_outside_agency,
    sender_auth,
    sender_domain,
    sender_identity,
    sender_in,
    subject_matches,
    subject_quotes_tag,
    type_mismatch,
    unencrypted_attachments,
    virus,
    weak_encryption,
)
from gateway.policy.checks.base import Check

REGISTRY: dict[str, Check[Any]] = {
    c.name: c for c in (
        message_size.CHECK,
        attachment_size.CHECK,
        classification.CHECK,
        unencrypted_attachments.CHECK,
        attachment_unreadable.CHECK,
        marking_mismatch.CHECK,
        office_macros.CHECK,
        sender_domain.CHECK,
        from_domain.CHECK, from_in.CHECK,
        recipient_domain.CHECK,
        recipient_outside_agency.CHECK,
        null_sender.CHECK,
        sender_in.CHECK,
        client_ip.CHECK,
        subject_matches.CHECK,
        subject_quotes_tag.CHECK,
        body_matches.CHECK,
        attachment_type.CHECK,
        attachment_name.CHECK,
        link_domain.CHECK,
        auto_forwarded.CHECK,
        mime_defect.CHECK,
        inspection_incomplete.CHECK,
        sender_identity.CHECK,
        type_mismatch.CHECK,
        sender_auth.CHECK,
        virus.CHECK,
        antivirus_failed.CHECK,
        antivirus_skipped.CHECK,
        # issue 14 items 1 and 2: the password in the same message, weak encryption
        password_in_message.CHECK,
        weak_encryption.CHECK,
    )
}
