"""`weak_encryption: true|false`: an attachment is encrypted with a weak scheme.

Weak (`gateway.message.cipher.WEAK_SCHEMES`): `zipcrypto` (PKWARE traditional ZIP),
`rc4` (Office 97-2003 RC4 and RC4 CryptoAPI, OOXML standard encryption with RC4),
`xor` (Word/Excel XOR obfuscation), `pdf-rc4` (PDF RC4, 40 to 128 bits) and
`blowfish` (OpenOffice.org 1-2 documents). AES, OpenPGP and S/MIME are not weak; an
encrypted attachment whose scheme cannot be told is not counted (listed as `unknown`).

`true` holds when at least one attachment (a file inside an Outlook item or TNEF
attachment counts) is encrypted with a weak scheme; `false` is the exact opposite.
Evidence: every encrypted attachment with its scheme and, where the file tells it
cheaply, its cipher and key length (`AES-256`, `RC4-40`: `cipher.cipher`), the weak
ones first, so a monitor rule's log shows what is sent and how strongly.
"""

from __future__ import annotations

from typing import Any

from gateway.message import cipher
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag

MAX_LISTED = 10


@check("weak_encryption", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    view.require_complete()
    found: list[dict[str, Any]] = []
    for a in view.attachments:
        if a.encrypted is not True or a.enclosed is not None:
            continue
        scheme = a.encryption_scheme
        found.append({"index": a.index, "name": a.path, "scheme": scheme or "unknown",
                      "cipher": cipher.cipher(a.data(), scheme),
                      "weak": cipher.weak(scheme)})
    weak = [f for f in found if f["weak"]]
    if want and weak:
        found.sort(key=lambda f: not f["weak"])
        return {"encrypted": found[:MAX_LISTED], "weak": len(weak)}
    if not want and not weak:
        return {"encrypted": found[:MAX_LISTED], "weak": 0}
    return None
