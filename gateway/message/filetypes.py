"""Real file types: libmagic's MIME type of the content, and the policy's category.

The declared Content-Type and the file name are the sender's claims; the type
here is what the bytes are. Categories (what `attachment_type` rules name):
executable, archive, office, pdf, image, text, other.

One exception reads the name: a text file whose extension makes Windows run it
(`.bat`, `.vbs`, `.js`, `.ps1`...) is an executable, because libmagic only sees a
script by its `#!` line. The name can only make a file more dangerous, never less.
"""

from __future__ import annotations

import io
import zipfile

import magic

# libmagic reads at most this much; its own default is about 1 MiB, but every type
# the policy distinguishes is decided in the first few kilobytes (tar: 257 bytes,
# OOXML: the first ZIP entries).
MAGIC_BYTES = 256 * 1024

CATEGORIES = ("executable", "archive", "office", "pdf", "image", "text", "other")

_EXECUTABLE = frozenset({
    "application/x-dosexec", "application/x-msdownload", "application/x-executable",
    "application/x-sharedlib", "application/x-pie-executable", "application/x-elf",
    "application/x-mach-binary", "application/x-mach-o-executable", "application/x-coff",
    "application/x-object", "application/vnd.microsoft.portable-executable",
    "application/x-msi", "application/x-ms-installer", "application/x-ole-msi",
    "application/java-archive", "application/x-java-applet", "application/x-java-archive",
    "application/vnd.android.package-archive", "application/x-ms-shortcut",
    "application/x-bytecode.python", "application/javascript", "application/x-javascript",
    "text/x-shellscript", "text/x-python", "text/x-script.python", "text/x-perl",
    "text/x-ruby", "text/x-php", "text/x-tcl", "text/x-lua", "text/x-awk",
    "text/x-msdos-batch", "text/x-batch", "text/javascript", "text/x-powershell",
    "text/vbscript", "text/x-vbscript",
})
_ARCHIVE = frozenset({
    "application/zip", "application/x-zip-compressed", "application/x-rar",
    "application/vnd.rar", "application/x-rar-compressed", "application/x-7z-compressed",
    "application/gzip", "application/x-gzip", "application/x-bzip2", "application/x-xz",
    "application/x-lzma", "application/x-lzip", "application/zstd", "application/x-zstd",
    "application/x-tar", "application/x-gtar", "application/x-cpio", "application/x-archive",
    "application/vnd.ms-cab-compressed", "application/x-iso9660-image",
    "application/x-lzh-compressed", "application/x-lha", "application/x-arj",
    "application/x-compress", "application/x-ace-compressed", "application/x-stuffit",
    "application/x-apple-diskimage", "application/x-xar", "application/x-rpm",
    "application/vnd.debian.binary-package", "application/x-bzip",
})
_OFFICE_EXACT = frozenset({
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.ms-office", "application/vnd.ms-outlook", "application/vnd.visio",
    "application/x-ole-storage", "application/cdfv2", "application/cdfv2-encrypted",
    "application/cdfv2-unknown", "application/encrypted", "application/rtf", "text/rtf",
    "application/vnd.ms-word", "application/x-msword",
})
_OFFICE_PREFIXES = ("application/vnd.openxmlformats-officedocument.",
                    "application/vnd.oasis.opendocument.", "application/vnd.ms-word.",
                    "application/vnd.ms-excel.", "application/vnd.ms-powerpoint.")
_TEXT_LIKE = frozenset({"application/json", "application/xml", "application/x-empty",
                        "inode/x-empty", "message/rfc822", "application/pgp-keys",
                        "application/pgp-signature"})
# Names Windows (or a desktop) runs as programs; see the module docstring.
_RUNNABLE_EXTENSIONS = frozenset({
    "bat", "cmd", "com", "exe", "scr", "pif", "cpl", "msi", "msp", "vbs", "vbe", "js",
    "jse", "wsf", "wsh", "ws", "hta", "ps1", "psm1", "ps1xml", "sct", "lnk", "reg",
    "jar", "sh", "py", "pl", "application", "gadget", "inf", "scf", "url",
})


# libmagic also reports x-dosexec for DOS .COM guesses (a jump opcode in the first
# byte: about 1 % of random or encrypted data) and x-object/x-executable for a.out
# and COFF two-byte magics. Binary programs that run today carry a strong signature;
# without one the content is "other", not a false executable alarm.
_BINARY_PROGRAM_TYPES = frozenset({
    "application/x-dosexec", "application/x-msdownload", "application/x-executable",
    "application/x-sharedlib", "application/x-pie-executable", "application/x-elf",
    "application/x-mach-binary", "application/x-mach-o-executable", "application/x-coff",
    "application/x-object", "application/vnd.microsoft.portable-executable",
})
_PROGRAM_SIGNATURES = (b"MZ", b"ZM", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
                       b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def detect(data: bytes) -> str:
    """libmagic's MIME type for the content ('application/octet-stream' if it fails)."""
    if not data:
        return "application/x-empty"
    try:
        found = magic.from_buffer(data[:MAGIC_BYTES], mime=True)
    except Exception:  # libmagic errors on odd input must not stop inspection
        return "application/octet-stream"
    return str(found or "application/octet-stream").lower()


def _is_ooxml_zip(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())  # all: the marker entry may come last
    except Exception:  # a broken ZIP is just an archive
        return False
    return "[Content_Types].xml" in names or "mimetype" in names


def category(detected_type: str, filename: str = "", data: bytes = b"") -> str:
    """The policy category for a libmagic type (see the module docstring)."""
    t = detected_type.lower()
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if t in _BINARY_PROGRAM_TYPES and data and not data.startswith(_PROGRAM_SIGNATURES):
        return "other"
    if t in _EXECUTABLE:
        return "executable"
    if t in _OFFICE_EXACT or t.startswith(_OFFICE_PREFIXES):
        return "office"
    if t in _ARCHIVE:
        # libmagic calls an OOXML/ODF file whose first entry is not the usual one a ZIP.
        if t == "application/zip" and data and _is_ooxml_zip(data):
            return "office"
        return "archive"
    if t == "application/pdf":
        return "pdf"
    if t.startswith("image/"):
        return "image"
    if t in ("text/xml", "application/xml") and b"<office:document" in data[:4096]:
        return "office"  # flat OpenDocument (.fodt, .fods, .fodp): libmagic says XML
    if t.startswith("text/") or t in _TEXT_LIKE:
        if ext in _RUNNABLE_EXTENSIONS:
            return "executable"
        return "text"
    return "other"


# -- claims: what the sender says the file is ---------------------------------------

_EXTENSION_CATEGORY: dict[str, str] = {
    **{e: "pdf" for e in ("pdf",)},
    **{e: "office" for e in (
        "doc", "docx", "docm", "dot", "dotx", "dotm", "xls", "xlsx", "xlsm", "xlsb", "xlt",
        "xltx", "xltm", "ppt", "pptx", "pptm", "pps", "ppsx", "pot", "potx", "odt", "ods",
        "odp", "odg", "fodt", "fods", "fodp", "fodg", "rtf", "vsd", "vsdx", "msg")},
    **{e: "archive" for e in ("zip", "rar", "7z", "gz", "tgz", "bz2", "xz", "tar", "cab",
                              "iso", "arj", "lzh", "zst", "z")},
    **{e: "image" for e in ("jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp",
                            "heic", "svg", "ico")},
    **{e: "text" for e in ("txt", "csv", "log", "md", "htm", "html", "xml", "json", "ics",
                           "vcf", "eml")},
    **{e: "executable" for e in _RUNNABLE_EXTENSIONS},
}
# A claimed category the real one may legitimately differ from: OOXML and ODF files
# are ZIP archives, and mail clients often declare them so.
_COMPATIBLE = frozenset({("archive", "office")})


def claimed_categories(declared_type: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The categories the declared Content-Type and each name's extension claim.

    A generic declared type (application/octet-stream and the like, category
    `other`) and an unknown extension claim nothing."""
    claims: list[str] = []
    declared = category(declared_type.lower())
    if declared != "other":
        claims.append(declared)
    for name in names:
        ext = name.rsplit(".", 1)[-1].strip().lower() if "." in name else ""
        found = _EXTENSION_CATEGORY.get(ext)
        if found is not None:
            claims.append(found)
    return tuple(dict.fromkeys(claims))


def mismatch(claims: tuple[str, ...], real_category: str) -> bool:
    """Some claim disagrees with the category of the content."""
    return any(c != real_category and (c, real_category) not in _COMPATIBLE for c in claims)
