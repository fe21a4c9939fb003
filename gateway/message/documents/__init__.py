"""Documents inside attachments: the text where a classification marking may stand.

One concept per module:
- `walk`: an attachment's bytes -> `Piece`s, recursively through archives;
- `piece`: `Piece`, a text with the rule it is read by and where it stood;
- `ooxml`: Word, Excel and PowerPoint parts, header/footer codes, sensitivity labels;
- `pdf`: page text, and whether a PDF needs a password to open;
- `archives`: ZIP bomb checks and streamed, capped member reads;
- `compressed`: tar (any compression) and single gzip/bzip2/xz files, bounded;
- `xmltext`: safe, streamed paragraph text of an XML part;
- `sevenzip`, `rar`: whether 7z and RAR archives are encrypted, from their headers;
- `bounds`: the bytes, time and shape one message's documents may cost.

The marking grammar stays in `gateway.message.markings`: this package only says
what the text is and where it stood.
"""

from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.piece import Piece
from gateway.message.documents.walk import pieces

__all__ = ["Bounds", "LimitExceeded", "Piece", "pieces"]
